"""A small registry of public NER data sets and where to fetch them.

Each data set is a frozen `DatasetSpec` naming its files by the split file name the rest of
nerlab reads (`train.txt`, `valid.txt`, `test.txt`), each with the URL it is fetched from and
the sha256 (and, where known, the size) it must have.

The URLs can be redirected to a mirror: a `base_url` argument, or else the `NERLAB_DATA_MIRROR`
environment variable, replaces every URL by `{base_url}/{filename}`, so a mirror (or a local
test server, or a `file://` folder) only has to hold the files under their split names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from nerlab.errors import DownloadError

MIRROR_ENV_VAR = "NERLAB_DATA_MIRROR"

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileSpec:
    """One file of a data set: where it comes from and what it must hash to."""

    url: str
    sha256: str
    size: int | None = None

    def __post_init__(self) -> None:
        digest = self.sha256.strip().lower()
        if not _SHA256_RE.fullmatch(digest):
            raise ValueError(f"sha256 must be 64 hexadecimal digits, got {self.sha256!r}")
        object.__setattr__(self, "sha256", digest)
        if self.size is not None and self.size < 0:
            raise ValueError(f"size must be non-negative or None, got {self.size}")


@dataclass(frozen=True)
class DatasetSpec:
    """A public NER data set: its split files and how to read them.

    `files` maps a split file name (`train.txt`, ...) to its `FileSpec`; it is stored as a
    read-only mapping. `tag_column` is the 0-based column holding the NER tag (negative
    values count from the end, as in Python).
    """

    name: str
    description: str
    files: Mapping[str, FileSpec] = field(hash=False)
    license: str
    tag_column: int = -1
    columns: tuple[str, ...] = ()
    tag_scheme: str = "IOB2"
    language: str = "en"
    homepage: str = ""
    citation: str = ""

    def __post_init__(self) -> None:
        if not self.files:
            raise ValueError(f"data set {self.name!r} has no files")
        for filename in self.files:
            if not filename or "/" in filename or "\\" in filename or filename in (".", ".."):
                raise ValueError(f"data set {self.name!r}: invalid file name {filename!r}")
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))

    @property
    def filenames(self) -> tuple[str, ...]:
        """The split file names, in registration order."""
        return tuple(self.files)

    def url_for(self, filename: str, base_url: str | None = None) -> str:
        """The URL `filename` is fetched from, honouring `base_url` / `NERLAB_DATA_MIRROR`."""
        if filename not in self.files:
            known = ", ".join(self.files)
            raise DownloadError(
                f"data set {self.name!r} has no file {filename!r}; its files are: {known}"
            )
        mirror = resolve_mirror(base_url)
        if mirror is None:
            return self.files[filename].url
        return f"{mirror}/{filename}"

    def urls(self, base_url: str | None = None) -> dict[str, str]:
        """Every split file name mapped to the URL it is fetched from."""
        return {filename: self.url_for(filename, base_url) for filename in self.files}


def resolve_mirror(base_url: str | None = None) -> str | None:
    """The URL prefix that replaces the registered URLs, or None to use them as they are.

    An explicit `base_url` wins over the `NERLAB_DATA_MIRROR` environment variable; an empty
    value counts as unset. Trailing slashes are dropped.
    """
    value = base_url if base_url else os.environ.get(MIRROR_ENV_VAR, "")
    value = value.strip().rstrip("/")
    return value or None


_CONLL2003_BASE = "https://raw.githubusercontent.com/synalp/NER/master/corpus/CoNLL-2003"

CONLL2003 = DatasetSpec(
    name="conll2003",
    description=(
        "CoNLL-2003 shared task, English (Reuters news): PER, ORG, LOC, MISC; "
        "4 columns token POS chunk NER, original IOB1 tags, -DOCSTART- lines between documents"
    ),
    files={
        "train.txt": FileSpec(
            url=f"{_CONLL2003_BASE}/eng.train",
            sha256="213953b5522fb7924802d883e50f027b2c6ffb5d4d0e63368ed82909f9b60423",
        ),
        "valid.txt": FileSpec(
            url=f"{_CONLL2003_BASE}/eng.testa",
            sha256="c02eb19809eafb83998326a0481942eb37d96f31826ae387cfe8773699969f5b",
        ),
        "test.txt": FileSpec(
            url=f"{_CONLL2003_BASE}/eng.testb",
            sha256="dc4ac7f3d6d01a6bec59261814561da3b287b6b493b97d1f69c580b52ec1831b",
        ),
    },
    license=(
        "Reuters Corpus (RCV1) terms: research use only; the annotations are by the "
        "CoNLL-2003 organisers"
    ),
    tag_column=3,
    columns=("token", "pos", "chunk", "ner"),
    tag_scheme="IOB1",
    language="en",
    homepage="https://www.clips.uantwerpen.be/conll2003/ner/",
    citation=(
        "Tjong Kim Sang and De Meulder (2003), Introduction to the CoNLL-2003 Shared Task: "
        "Language-Independent Named Entity Recognition"
    ),
)

_REGISTRY: dict[str, DatasetSpec] = {}


def _normalize(name: str) -> str:
    return name.strip().lower()


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add `spec` to the registry under its name (case-insensitive); returns it."""
    key = _normalize(spec.name)
    if key in _REGISTRY and not replace:
        raise ValueError(f"a data set named {spec.name!r} is already registered")
    _REGISTRY[key] = spec
    return spec


def list_datasets() -> list[str]:
    """The names of every registered data set, sorted."""
    return sorted(spec.name for spec in _REGISTRY.values())


def get_dataset(name: str) -> DatasetSpec:
    """The registered data set called `name` (case-insensitive).

    Raises `DownloadError` listing the known names when there is none.
    """
    spec = _REGISTRY.get(_normalize(name))
    if spec is None:
        known = ", ".join(list_datasets()) or "(none)"
        raise DownloadError(f"unknown data set {name!r}; known data sets: {known}")
    return spec


register_dataset(CONLL2003)
