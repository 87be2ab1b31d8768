"""Floating-point settings of a training process: no subnormal arithmetic.

Subnormal floats (non-zero, below 1.2e-38 in float32) are many times slower on x86 than normal
ones, and training makes them: every step multiplies the Adam moments of parameters whose
gradient is zero by beta1, and they decay through the subnormal range. With flush-to-zero and
denormals-are-zero (FTZ/DAZ) such results become 0 instead. The bits live in each thread's
MXCSR register, and a thread starts with those of the thread that created it, so they are set
in the main thread before torch's (and numba's) worker threads start: first thing in
``nerlab-train`` and in :func:`nerlab.training.run.train`.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def flush_denormals() -> bool:
    """Set FTZ/DAZ in this thread; threads created after this call inherit them. Returns
    whether the CPU supports it. Warns when torch's worker threads, started earlier, still
    compute subnormals."""
    supported = torch.set_flush_denormal(True)
    if supported and subnormal_results() > 0:
        log.warning(
            "some of torch's CPU worker threads started before flush-to-zero was set and still "
            "compute with subnormal floats (slow): call nerlab.training.numerics.flush_denormals() "
            "before any other torch computation"
        )
    return supported


def subnormal_results(size: int = 1 << 20) -> int:
    """How many elements of a product computed by torch's worker threads come out subnormal
    (0 when every thread flushes them): ``size`` values 1e-30 times 1e-10, split across the
    intra-op threads."""
    values = torch.full((size,), 1e-30, dtype=torch.float32)
    return count_subnormal(values * 1e-10)


#: (integer view, exponent bits, mantissa bits) of the float types
_LAYOUT = {
    torch.float32: (torch.int32, 0x7F800000, 0x007FFFFF),
    torch.float64: (torch.int64, 0x7FF0000000000000, 0x000FFFFFFFFFFFFF),
}


def count_subnormal(tensor: torch.Tensor) -> int:
    """The number of subnormal elements of a float32 or float64 tensor: a zero exponent and a
    non-zero mantissa, read from the bits (with denormals-are-zero set, a float comparison
    would see them as 0)."""
    integer, exponent, mantissa = _LAYOUT[tensor.dtype]
    bits = tensor.detach().contiguous().view(integer)
    return int((((bits & exponent) == 0) & ((bits & mantissa) != 0)).sum())
