"""The bench's ``key=value`` options, parsed and checked once.

``data_dir`` (default ``../shared/data/conll2003`` beside the repository), ``quick=true`` (a
few batches of each: a smoke test, not a measurement), ``peers=false`` (skip the peers' venv;
their keys are then left out of the JSON line), ``threads=N`` (torch threads in every process;
default torch's own, for flair too; spaCy computes on one thread), ``out_dir`` (default
``bench_results``), ``parts=data,crf,...`` (a subset; the peers run with ``crf``, ``train``
and ``infer``), ``timeout=SECONDS`` (for each child process).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.parts import PART_NAMES
from benchmarks.peers import ROOT

DEFAULTS = {
    "data_dir": str(ROOT.parent / "shared" / "data" / "conll2003"),
    "quick": "false",
    "peers": "true",
    "threads": "",
    "out_dir": str(ROOT / "bench_results"),
    "parts": ",".join(PART_NAMES),
    "timeout": "",
}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


class UsageError(ValueError):
    """A bad option: printed as one line, exit status 2."""


def _flag(key: str, value: str) -> bool:
    if value.strip().lower() not in _TRUE + _FALSE:
        raise UsageError(f"{key} must be true or false, found {value!r}")
    return value.strip().lower() in _TRUE


def _whole_number(key: str, value: str) -> int | None:
    if value in ("", "null", "None"):
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{key} must be a whole number, found {value!r}") from None


def parse_options(argv: list[str]) -> dict:
    """``["quick=true", ...]`` -> ``{"data_dir": Path, "quick": bool, "parts": [...], ...}``."""
    from nerlab.cli.options import parse_options as parse_cli
    from nerlab.errors import NerlabError

    try:
        given = parse_cli([a.lstrip("+") for a in argv], allowed=DEFAULTS)
    except NerlabError as err:
        raise UsageError(str(err)) from None
    options = {**DEFAULTS, **given}
    parts = [p.strip() for p in options["parts"].split(",") if p.strip()]
    unknown = set(parts) - set(PART_NAMES)
    if unknown:
        raise UsageError(f"parts: unknown {sorted(unknown)}; choose from {list(PART_NAMES)}")
    return {
        "data_dir": Path(options["data_dir"]),
        "out_dir": Path(options["out_dir"]),
        "quick": _flag("quick", options["quick"]),
        "peers": _flag("peers", options["peers"]),
        "threads": _whole_number("threads", options["threads"]),
        "timeout": _whole_number("timeout", options["timeout"]),
        "parts": parts,
    }
