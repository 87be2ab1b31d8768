"""Dropout drawn cheaply, and variational (locked) dropout: one mask per sequence, shared by
every time step."""

from __future__ import annotations

import math

import torch
from torch import nn

# (bits per draw, the dtype that holds them, its smallest value)
_DRAWS = ((8, torch.uint8, 0), (16, torch.int16, -(2**15)))


def keep_mask(shape: tuple[int, ...] | torch.Size, p: float, device=None) -> torch.Tensor:
    """A boolean tensor of ``shape``, each element True with probability ``1 - p`` exactly.

    When ``p`` is a multiple of 1/256 (dropout 0.5, 0.25, ...) each element compares 8 random
    bits with ``p * 256``; a multiple of 1/65536 takes 16 bits; any other ``p`` a float draw.
    The bits come 64 at a time from the generator (``torch.randint`` over the int64 range), a
    quarter of the draws ``torch.rand`` makes: on this project's 2-core CPU the default's masks
    fell from 2.87-2.99 to 0.46-0.64 ms a training step, from about 6% of a step to 1.4%
    (``python -m benchmarks.step_profile``, docs/performance.md)."""
    numel = math.prod(shape)
    for bits, dtype, lowest in _DRAWS:
        threshold = p * 2**bits
        if threshold == int(threshold):
            words = -(-numel * bits // 64)
            draws = torch.randint(-(2**63), 2**63 - 1, (words,), dtype=torch.int64, device=device)
            return (draws.view(dtype)[:numel] >= lowest + int(threshold)).view(shape)
    return torch.rand(shape, device=device) >= p


class SequenceDropout(nn.Module):
    """Dropout on ``(B, L, D)`` inputs; with ``variational`` the mask is drawn per ``(B, D)``
    and reused at every position (Gal & Ghahramani), otherwise per element."""

    def __init__(self, p: float, variational: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), found {p}")
        self.p = p
        self.variational = variational

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        shape = (x.shape[0], 1, x.shape[2]) if self.variational else x.shape
        keep = keep_mask(shape, self.p, x.device)
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))
