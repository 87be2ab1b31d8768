"""Reading and writing whitespace-separated column files (CoNLL, BIO).

A file holds one token a line, ``<token> <tag_1> ... <tag_n>`` separated by spaces or tabs, a
blank line between sentences, and optional ``-DOCSTART-`` lines, which start a document: each
sentence keeps the number of its document (``Sentence.doc``). CRLF line
ends are accepted. Pure Python: no torch here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from nerlab.data import tag_schemes
from nerlab.errors import DataFormatError, NerlabError, TagSchemeError
from nerlab.files import atomic_path

log = logging.getLogger(__name__)

DOCSTART = "-DOCSTART-"


class Sentence(tuple):
    """A ``(tokens, tags)`` pair that also remembers the line it starts on (1-based) and its
    document: the number of the ``-DOCSTART-`` block it is in (0 for the first), or None in a
    file without ``-DOCSTART-`` lines (see :func:`document_ids`)."""

    line: int
    doc: int | None

    def __new__(
        cls, tokens: list[str], tags: list[str], line: int = 0, doc: int | None = None
    ) -> Sentence:
        self = super().__new__(cls, (tokens, tags))
        self.line = line
        self.doc = doc
        return self

    def __getnewargs__(self):
        return (self[0], self[1], self.line, self.doc)

    def with_tags(self, tags: list[str]) -> Sentence:
        """The same sentence (line, document) with other tags."""
        return Sentence(self[0], tags, self.line, self.doc)

    @property
    def tokens(self) -> list[str]:
        return self[0]

    @property
    def tags(self) -> list[str]:
        return self[1]


def _column_index(tag_column: int) -> int:
    """Map ``tag_column`` to an index into a line's fields.

    As NLP Architect's ``--tag_num``: the token is column 0 and ``tag_1`` is column 1, so
    ``tag_column=N`` (N >= 1) reads ``fields[N]``; negative values count from the end
    (-1 is the last column).
    """
    if tag_column == 0:
        raise NerlabError(
            "data.tag_column=0 names the token column; use 1 for the first tag column "
            "or -1 for the last"
        )
    return tag_column


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line, streamed; bytes that are not UTF-8 are an error
    naming their line."""
    if not path.exists():
        raise DataFormatError(path, None, "an existing file", "no such file")
    if path.is_dir():
        raise DataFormatError(path, None, "a file", "a directory")
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                bad = raw[err.start : err.start + 4]
                raise DataFormatError(path, number, "UTF-8 text", f"the bytes {bad!r}") from None


def iter_conll(
    path: str | os.PathLike,
    tag_column: int = -1,
    *,
    check_tags: bool = True,
    labelled: bool = True,
) -> Iterator[Sentence]:
    """Stream the sentences of a column file (see :func:`read_conll`), one at a time."""
    path = Path(path)
    column = _column_index(tag_column)
    need = column + 1 if column > 0 else -column  # fields a line must have, token included
    need = max(need, 2) if labelled else 1
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    doc: int | None = None
    doc_has_sentences = False
    known_tags: set[str] = set()
    for number, raw in _lines(path):
        fields = raw.split()
        if not fields or fields[0] == DOCSTART:
            if tokens:
                yield Sentence(tokens, tags, start, doc)
                doc_has_sentences = True
                tokens, tags = [], []
            if fields:  # a new document, unless the last one is still empty
                if doc is None:
                    doc = 1 if doc_has_sentences else 0
                elif doc_has_sentences:
                    doc += 1
                doc_has_sentences = False
            continue
        if not tokens:
            start = number
        tokens.append(fields[0])
        if not labelled:
            continue
        if len(fields) < need:
            raise DataFormatError(
                path,
                number,
                f"at least {need} whitespace-separated columns (data.tag_column={tag_column})",
                f"{len(fields)} column{'s' if len(fields) != 1 else ''} {raw.strip()!r}",
            )
        tag = fields[column]
        if check_tags and tag not in known_tags:
            if not tag_schemes.is_valid_tag(tag):
                raise DataFormatError(
                    path,
                    number,
                    f"a tag like O, B-PER or I-PER in column {tag_column}",
                    repr(tag),
                )
            known_tags.add(tag)
        tags.append(tag)
    if tokens:
        yield Sentence(tokens, tags, start, doc)


def document_ids(sentences: Sequence[Sentence], documents: str | int = "auto") -> list[int]:
    """A document number for each sentence, as ``documents`` says what a document is:

    - ``"docstart"``: the ``-DOCSTART-`` blocks of the file (sentences before the first one
      form a document of their own);
    - ``"file"``: the whole file is one document;
    - ``"sentence"``: every sentence is its own (no document context);
    - ``N`` (a positive number): every N consecutive sentences;
    - ``"auto"``: ``docstart`` when the file has ``-DOCSTART-`` lines, else ``sentence``.
    """
    if isinstance(documents, str) and documents.isdigit():
        documents = int(documents)
    if documents == "auto":
        has = any(s.doc is not None for s in sentences)
        documents = "docstart" if has else "sentence"
    if documents == "docstart":
        ids, seen, last = [], -1, object()
        for s in sentences:
            key = -1 if s.doc is None else s.doc
            if key != last:
                seen += 1
                last = key
            ids.append(seen)
        return ids
    if documents == "file":
        return [0] * len(sentences)
    if documents == "sentence":
        return list(range(len(sentences)))
    if isinstance(documents, int) and not isinstance(documents, bool) and documents > 0:
        return [i // documents for i in range(len(sentences))]
    raise NerlabError(
        "data.documents must be auto, docstart, file, sentence or a positive number of "
        f"sentences, found {documents!r}"
    )


def read_conll(
    path: str | os.PathLike,
    tag_column: int = -1,
    *,
    check_tags: bool = True,
    labelled: bool = True,
) -> list[Sentence]:
    """Read a column file into a list of ``(tokens, tags)`` pairs (:class:`Sentence`).

    ``tag_column`` picks the tag as NLP Architect's ``--tag_num`` did: ``fields[tag_column]``
    with the token in column 0, negative values from the end. With ``labelled=False`` only the
    first column is read and tags are empty lists (for prediction input). With ``check_tags``
    every tag must look like ``O`` or ``B-/I-/E-/S-TYPE``. Errors name the file and line.
    """
    sentences = list(iter_conll(path, tag_column, check_tags=check_tags, labelled=labelled))
    if not sentences:
        raise DataFormatError(path, None, "at least one sentence", "an empty file")
    return sentences


def to_iob2(
    sentences: Sequence[Sentence],
    path: str | os.PathLike | None = None,
    *,
    source: str = "auto",
    on_invalid: str = "repair",
) -> tuple[list[Sentence], str, int]:
    """Bring a corpus to well-formed IOB2, whatever scheme it came in.

    ``source`` is ``auto`` (detect), ``iob1``, ``iob2``/``bio`` or ``iobes``. An ill-formed
    sequence (``O I-PER`` in IOB2) is either repaired the way conlleval reads it
    (``on_invalid="repair"``, the default, with one warning giving the count and first line) or
    refused with a DataFormatError naming the line (``on_invalid="error"``).
    Returns the sentences, the source scheme and the number of sentences repaired.
    """
    if on_invalid not in ("repair", "error"):
        raise NerlabError(f"data.on_invalid must be 'repair' or 'error', found {on_invalid!r}")
    scheme = (
        tag_schemes.detect_scheme([s.tags for s in sentences])
        if source == "auto"
        else tag_schemes.canonical_scheme(source)
    )
    out: list[Sentence] = []
    repaired = 0
    first_bad: int | None = None
    for sentence in sentences:
        tokens, tags = sentence
        bad = tag_schemes.validate(tags, scheme)
        if bad is None:
            new = tags if scheme == "iob2" else tag_schemes.convert_tags(tags, "iob2", scheme)
        else:
            line = sentence.line + bad
            if on_invalid == "error":
                prev = tags[bad - 1] if bad > 0 else "the start of the sentence"
                raise DataFormatError(
                    path,
                    line,
                    f"a well-formed {scheme.upper()} sequence",
                    f"{tags[bad]!r} after {prev!r}",
                )
            new, _ = tag_schemes.repair_iob2(tags)
            repaired += 1
            first_bad = first_bad or line
        out.append(sentence.with_tags(new))
    if repaired:
        log.warning(
            "%s: repaired %d ill-formed %s sentence(s) the way conlleval reads them "
            "(first at line %d); set data.on_invalid=error to refuse them instead",
            path or "<input>",
            repaired,
            scheme.upper(),
            first_bad,
        )
    return out, scheme, repaired


def convert_corpus(sentences: Iterable[Sentence], target: str) -> list[Sentence]:
    """Convert well-formed IOB2 sentences to ``target`` (used to train with IOBES tags)."""
    target = tag_schemes.canonical_scheme(target)
    if target == "iob2":
        return list(sentences)
    try:
        return [s.with_tags(tag_schemes.convert_tags(s.tags, target, "iob2")) for s in sentences]
    except TagSchemeError as err:  # pragma: no cover - input was validated by to_iob2
        raise NerlabError(str(err)) from None


def sentence_block(rows: Iterable[Sequence[str]]) -> str:
    """One sentence as column lines (``rows``: each token's fields), ending in a blank line."""
    return "".join(" ".join(fields) + "\n" for fields in rows) + "\n"


def docstart_block(columns: int = 2) -> str:
    """A ``-DOCSTART-`` line with ``O`` in its other ``columns - 1`` columns, and a blank line."""
    return " ".join([DOCSTART] + ["O"] * (columns - 1)) + "\n\n"


def write_conll(
    path: str | os.PathLike,
    rows: Iterable[Sequence[Sequence[str]]],
) -> int:
    """Write sentences as columns: each sentence is a sequence of per-token field sequences.
    Returns the number of sentences written.

    Written to a temporary name and renamed, so a crash never leaves a half-written file.
    """
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for sentence in rows:
            fh.write(sentence_block(sentence))
            count += 1
    return count
