"""Optimizer step: `nerlab.training.optim.FusedNAdam` against `torch.optim.NAdam` (foreach).

Both step the default model's own trainable parameters (shapes as ``make train`` builds them
on the data, the word embedding first among them) with fixed random gradients, on the same
threads, alternating in rounds so that a busy neighbour slows both alike. Reports steps per
second of each and the ratio; the update itself is the same (``tests/test_optim.py``).
"""

from __future__ import annotations

import time

import torch

from nerlab.training.optim import FusedNAdam


def _steps_per_s(optimizer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return steps / (time.perf_counter() - start)


def run(module: torch.nn.Module, *, steps: int = 200, rounds: int = 3, lr: float = 0.002) -> dict:
    shapes = [tuple(p.shape) for p in module.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(0)

    def params() -> list[torch.nn.Parameter]:
        out = []
        for shape in shapes:
            p = torch.nn.Parameter(torch.randn(shape, generator=generator))
            p.grad = torch.randn(shape, generator=generator)
            out.append(p)
        return out

    ours = FusedNAdam(params(), lr=lr)
    theirs = torch.optim.NAdam(params(), lr=lr, foreach=True)
    for optimizer in (ours, theirs):  # state allocation and the kernel's first call
        _steps_per_s(optimizer, 5)
    best_ours = best_theirs = 0.0
    for _ in range(rounds):
        best_ours = max(best_ours, _steps_per_s(ours, steps))
        best_theirs = max(best_theirs, _steps_per_s(theirs, steps))
    return {
        "tensors": len(shapes),
        "elements": sum(int(torch.Size(s).numel()) for s in shapes),
        "steps": steps,
        "rounds": rounds,
        "torch_threads": torch.get_num_threads(),
        "fused_nadam_steps_per_s": best_ours,
        "torch_nadam_foreach_steps_per_s": best_theirs,
        "speedup": best_ours / best_theirs if best_theirs else None,
    }
