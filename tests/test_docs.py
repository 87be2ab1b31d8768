"""The project's own documents stay true: every repository path they name exists, and every
`make` target the README shows is a target of the Makefile."""

from __future__ import annotations

import re
import subprocess

from conftest import ROOT

#: folders and files of the repository that documents point into
TOP = (
    r"(?:conf|src|notebooks|tests|docs|benchmarks|\.ci)/[\w.*/-]*"
    r"|Makefile|environment\.yml|pyproject\.toml"
)
PATH = re.compile(rf"(?<![\w./-])(?:\.\./shared/[\w./-]+|{TOP})")


def _documents() -> dict[str, str]:
    """Each document's text that may name paths: the Markdown files whole, the comments of the
    Makefile and of the configs."""
    docs = {str(p.relative_to(ROOT)): p.read_text() for p in [ROOT / "README.md"]}
    docs.update({str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "docs").glob("*.md")})
    comments = [line for line in (ROOT / "Makefile").read_text().splitlines() if "#" in line]
    docs["Makefile (comments)"] = "\n".join(line[line.index("#") :] for line in comments)
    for conf in sorted((ROOT / "conf").rglob("*.yaml")):
        lines = [line[line.index("#") :] for line in conf.read_text().splitlines() if "#" in line]
        docs[f"{conf.relative_to(ROOT)} (comments)"] = "\n".join(lines)
    return docs


def _named_paths(text: str) -> set[str]:
    found = set()
    for match in PATH.finditer(text):
        path = match.group(0).split("#")[0].rstrip(".,:;)")
        if path.startswith("../shared/"):
            continue  # beside the repository, not in it (tests skip without it)
        if "..." in path or path.endswith("-"):
            continue  # an elided name ("notebooks/01-...")
        found.add(path)
    return found


def test_every_path_the_documents_name_exists():
    missing = []
    for name, text in _documents().items():
        for path in sorted(_named_paths(text)):
            exists = any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()
            if not exists:
                missing.append(f"{name}: {path}")
    assert not missing, "\n".join(missing)


def test_the_path_pattern_finds_what_it_should():
    text = "see [x](docs/results.md#a), `src/nerlab/crf.py`, conf/experiment/conll03_*, ../shared/x"
    assert _named_paths(text) == {
        "docs/results.md",
        "src/nerlab/crf.py",
        "conf/experiment/conll03_*",
    }


def _makefile_targets() -> set[str]:
    out = subprocess.run(
        ["make", "-pRrq", "-f", "Makefile"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    return {m.group(1) for m in re.finditer(r"^([\w-]+):", out, flags=re.M)}


def test_every_make_target_the_readme_shows_exists():
    readme = (ROOT / "README.md").read_text()
    shown = set(re.findall(r"(?<![\w-])make (?:--no-print-directory )?([a-z][\w-]*)", readme))
    assert {"train", "test", "bench", "predict"} <= shown  # the pattern reads the README
    assert shown <= _makefile_targets(), shown - _makefile_targets()
