"""What a part of the bench is: its measurements, the flat keys it adds to the JSON line and
its rows of the table. Adding a figure means editing its part only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.report import Row

if TYPE_CHECKING:
    from benchmarks.context import Context


@dataclass(frozen=True)
class Measurement:
    """One timed thing, stored as ``ctx.results[name]`` (None when it could not run).

    ``peer`` (``"flair"``, ``"spacy"``): a peer's figure, measured only when that peer can run
    (``Context.check_peers``)."""

    name: str
    run: Callable[[Context], dict]
    peer: str | None = None


@dataclass(frozen=True)
class Part:
    """A part of the bench, selected by ``parts=NAME``.

    ``keys(ctx, earlier)`` gives its flat keys of the JSON line, every one present (None where
    a figure could not be measured); ``earlier`` holds the keys of the parts run before it (a
    ratio may cite them). ``rows(ctx, keys)`` gives its table rows from all the keys.
    ``peer_keys`` are left out of the JSON line under ``peers=false``. ``needs_data``: its
    measurements need the three CoNLL files in ``data_dir``.
    """

    name: str
    measurements: tuple[Measurement, ...]
    keys: Callable[[Context, dict], dict]
    rows: Callable[[Context, dict], list[Row]]
    peer_keys: tuple[str, ...] = ()
    needs_data: bool = True


def ratio(ours: float | None, peer: float | None) -> float | None:
    """``ours / peer``, or None when either is missing."""
    return ours / peer if ours and peer else None


def join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)
