"""The one rule that turns several epochs into a training figure, for ours and flair's alike:
the median over the epochs after the first (the first loads kernels, fills caches and, for
flair, stores the word embeddings), or the only epoch's value when there is one."""

from __future__ import annotations

import statistics


def steady(values: list[float]) -> float | None:
    """The median of ``values[1:]``, ``values[0]`` when it is alone, None when empty."""
    if not values:
        return None
    return statistics.median(values[1:]) if len(values) > 1 else values[0]


def which_epochs(count: int) -> str:
    """What :func:`steady` took from ``count`` epochs, in words (1-based)."""
    if count == 1:
        return "epoch 1, the only one"
    return "epoch 2" if count == 2 else f"median of epochs 2-{count}"
