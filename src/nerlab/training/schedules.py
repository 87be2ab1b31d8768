"""Learning-rate schedules PyTorch does not ship, as ``_partial_`` targets (``conf/scheduler``)."""

from __future__ import annotations

import torch


class InverseTimeDecay(torch.optim.lr_scheduler.LRScheduler):
    """``lr_epoch = lr / (1 + decay * epoch)`` (Ma & Hovy 2016; Lample et al. 2016), stepped
    once per epoch."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, decay: float = 0.05, last_epoch: int = -1
    ) -> None:
        if decay < 0:
            raise ValueError(f"decay must be >= 0, found {decay}")
        self.decay = decay
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base / (1.0 + self.decay * self.last_epoch) for base in self.base_lrs]
