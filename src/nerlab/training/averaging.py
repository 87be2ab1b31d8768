"""Weight averaging: a run validates, checkpoints, tests and saves an average of the weights it
trained through instead of the last ones (Lightning's ``WeightAveraging``, made to fit the rest
of a run).

- ``method: swa``: the equal-weight mean of the weights at the end of every epoch from
  ``start_epoch`` on (stochastic weight averaging, Izmailov et al. 2018, here along the tail of
  the cosine schedule);
- ``method: ema``: an exponential moving average, updated after every optimizer step from
  ``start_epoch`` on. Its ``decay`` per step is given outright, or follows from ``half_life``:
  the fraction of the run's optimizer steps (``trainer.estimated_stepping_batches``) after which
  a step's weight in the average has halved, so a short run or a small data set averages over
  as large a share of its training as the default does on CoNLL-2003 (half_life 0.185 there:
  about 5,680 steps in 22 epochs of batches of 64, decay 0.99934).

What Lightning's callback does differently, and why:

- Until the first update, validation and checkpoints use the trained weights (Lightning would
  validate the untrained copy, and early stopping would stop on its scores).
- ``swa`` adds the epoch's weights at the start of that epoch's validation, so the score an
  epoch logs is the score of the average that includes it (Lightning adds them after
  validation, one epoch late) and the last epoch's average is validated too.
- Loading a checkpoint outside ``fit`` (``trainer.test(ckpt_path=...)``) leaves the module with
  the checkpoint's ``state_dict``, the averaged weights; Lightning would put the trained weights
  back and test those.
- Resuming restores the average and both update counters.

The trained weights travel in the checkpoint under ``current_model_state`` (Lightning's layout),
so a resumed run continues from them.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging as LightningWeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn

from nerlab.errors import ConfigError

log = logging.getLogger(__name__)

METHODS = ("swa", "ema")


class WeightAveraging(LightningWeightAveraging):
    def __init__(
        self,
        method: str = "swa",
        start_epoch: int = 1,
        decay: float | None = None,
        half_life: float | None = None,
    ) -> None:
        if method not in METHODS:
            raise ConfigError(
                f"callbacks.weight_averaging.method must be one of {', '.join(METHODS)}, "
                f"found {method!r}"
            )
        if start_epoch < 1:
            raise ConfigError(
                f"callbacks.weight_averaging.start_epoch must be >= 1, found {start_epoch}"
            )
        if method == "ema" and (decay is None) == (half_life is None):
            raise ConfigError(
                "callbacks.weight_averaging: method ema needs exactly one of decay and half_life, "
                f"found decay={decay}, half_life={half_life}"
            )
        if decay is not None and not 0.0 < decay < 1.0:
            raise ConfigError(f"callbacks.weight_averaging.decay must be in (0, 1), found {decay}")
        if half_life is not None and not 0.0 < half_life <= 1.0:
            raise ConfigError(
                f"callbacks.weight_averaging.half_life must be in (0, 1], found {half_life}"
            )
        # the network has no running statistics: its buffers are constants (transition masks)
        super().__init__(use_buffers=False)
        self.method = method
        self.start_epoch = start_epoch  # 1-based, as the logs count epochs
        self.decay = decay
        self.half_life = half_life
        self._epoch = 0

    # ------------------------------------------------------------------------- when to update
    def _from_start(self, epoch_idx: int) -> bool:
        return epoch_idx + 1 >= self.start_epoch

    @property
    def started(self) -> bool:
        """Whether the average holds any weights yet."""
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if self.method == "ema":
            return step_idx is not None and self._from_start(self._epoch)
        return epoch_idx is not None and self._from_start(epoch_idx)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.method != "ema" or self._average_model is None:
            return
        if self.half_life is not None:  # the run's length is known once its data is
            steps = max(1.0, self.half_life * trainer.estimated_stepping_batches)
            self.decay = 0.5 ** (1.0 / steps)
            log.info("weight averaging: ema decay %.6f (half-life %.0f steps)", self.decay, steps)
        self._average_model.multi_avg_fn = get_ema_multi_avg_fn(self.decay)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch = trainer.current_epoch

    # ------------------------------------------------------------------------- validation
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if (
            self.method == "swa"
            and self._average_model is not None
            and trainer.state.fn == "fit"
            and not trainer.sanity_checking
            and epoch > self._latest_update_epoch
            and self.should_update(epoch_idx=epoch)
        ):
            self._average_model.update_parameters(pl_module)
            self._latest_update_epoch = epoch
        if self.started:
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.started:
            self._swap_models(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.started:
            self._copy_average_to_current(pl_module)

    # ------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "latest_update_step": self._latest_update_step,
            "latest_update_epoch": self._latest_update_epoch,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._latest_update_step = state_dict["latest_update_step"]
        self._latest_update_epoch = state_dict.get("latest_update_epoch", -1)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average_model is None:
            return
        if self.started:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)
            return
        # nothing averaged yet: the checkpoint's weights are the trained ones, and the
        # (empty) averaging state travels with them so that a resumed run knows it
        checkpoint["current_model_state"] = checkpoint["state_dict"]
        checkpoint["averaging_state"] = {
            name: value
            for name, value in self._average_model.state_dict().items()
            if not name.startswith("module.")
        }

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # testing or predicting from a checkpoint: its state_dict, the averaged weights, stays
        if trainer.state.fn != "fit" or self._average_model is None:
            return
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
