"""`NERModule`: training, evaluation and prediction steps around the network of
:func:`nerlab.models.bilstm_crf.build_tagger`.

Steps, metrics and optimizers live here; the network lives in ``nerlab.models``. Scores are
computed on IOB2 strings against the DataModule's gold tags, so an entity type never seen in
training still counts as missed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from nerlab.data.tag_schemes import ids_to_iob2
from nerlab.errors import ConfigError
from nerlab.models.bilstm_crf import build_tagger
from nerlab.training.metrics import EntityF1
from nerlab.training.optim import FusedNAdam, clip_grad_norm


class NERModule(L.LightningModule):
    """A BiLSTM-CRF tagger trained and scored with Lightning.

    ``model`` holds :class:`TaggerConfig` fields (``num_tags`` comes from ``tags``, the tag
    strings of the training scheme in id order); ``entity_types`` the types scored (training
    types plus any that only occur in evaluation gold). ``optimizer`` and ``scheduler`` are
    partial constructors (``conf/optimizer``, ``conf/scheduler``: Hydra ``_partial_`` targets)
    taking the parameters and the optimizer; the scheduler steps once per epoch.
    """

    def __init__(
        self,
        model: dict,
        tags: list[str],
        tag_scheme: str,
        entity_types: list[str],
        optimizer: Callable[..., torch.optim.Optimizer] = FusedNAdam,
        scheduler: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        # the partials are code, not hyper-parameters: checkpoints stay loadable with
        # weights_only=True, and MLflow has the whole config anyway
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.tags = list(tags)
        self.net = build_tagger(model, self.tags, tag_scheme)
        self.config = self.net.config
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.metrics = torch.nn.ModuleDict(
            {stage: EntityF1(entity_types) for stage in ("val", "test")}
        )
        self._epoch_started = 0.0
        self._train_ended: float | None = None
        self._sentences_seen = 0

    # ------------------------------------------------------------------------- steps
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        emissions = self.net(batch)
        loss = self.net.loss(emissions, batch["tags"], batch["mask"])
        batch_size = batch["mask"].shape[0]
        self._sentences_seen += batch_size
        # `train_loss` is the epoch mean (the contract's name); the per-step value feeds the bar
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=batch_size)
        self.log("train_loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def predict_tags(self, batch: dict[str, torch.Tensor]) -> list[list[str]]:
        """IOB2 tags of every sentence of ``batch``, unpadded, in batch order."""
        mask = batch["mask"]
        ids = self.net.decode(self.net(batch), mask).tolist()
        lengths = mask.sum(1).tolist()
        return [ids_to_iob2(row[:n], self.tags) for row, n in zip(ids, lengths, strict=True)]

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        predictions = self.predict_tags(batch)
        gold = self.trainer.datamodule.splits[stage].gold
        targets = [gold[i] for i in batch["indices"].tolist()]
        self.metrics[stage].update(predictions, targets)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        return {"indices": batch["indices"].tolist(), "tags": self.predict_tags(batch)}

    # ------------------------------------------------------------------------- epoch ends
    def on_train_epoch_start(self) -> None:
        self._epoch_started = time.perf_counter()
        self._sentences_seen = 0

    def on_validation_epoch_start(self) -> None:
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self._train_ended = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        now = time.perf_counter()
        seconds = now - self._epoch_started
        train_seconds = (self._train_ended or now) - self._epoch_started
        self._train_ended = None
        self.log("epoch_time_s", seconds)
        self.log("train_time_s", train_seconds)
        self.log("train_sentences_per_s", self._sentences_seen / max(train_seconds, 1e-9))
        if self.device.type == "cuda":
            self.log("gpu_peak_memory_mb", torch.cuda.max_memory_allocated(self.device) / 2**20)
        metrics = self.trainer.callback_metrics
        parts = [f"epoch {self.current_epoch}"]
        for key in ("train_loss", "val_f1"):
            if key in metrics:
                parts.append(f"{key}={float(metrics[key]):.4f}")
        parts.append(f"train {train_seconds:.1f} s, with validation {seconds:.1f} s")
        rank_zero_info(" ".join(parts))

    def _log_scores(self, stage: str) -> dict:
        scores = self.metrics[stage].compute()
        self.metrics[stage].reset()
        self.log(f"{stage}_f1", scores["f1"], prog_bar=True)
        self.log(f"{stage}_precision", scores["precision"])
        self.log(f"{stage}_recall", scores["recall"])
        if stage == "test":
            for name, s in scores["per_type"].items():
                self.log(f"test_f1_{name}", s["f1"])
        self.last_scores = getattr(self, "last_scores", {})
        self.last_scores[stage] = scores
        return scores

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")

    # ------------------------------------------------------------------------- optimizers
    def configure_optimizers(self):
        optimizer = self.optimizer([p for p in self.parameters() if p.requires_grad])
        # an optimizer that updates rows (FusedNAdam's sparse_rows) gets the word embedding's
        # gradient as the rows a batch looks up; any other gets it dense, and so does a
        # distributed run (DDP's gradient buckets hold dense tensors only)
        distributed = self._trainer is not None and self.trainer.world_size > 1
        rows = bool(getattr(optimizer, "sparse_rows", False)) and not distributed
        self.net.words.embedding.sparse = rows
        if self.scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler(optimizer), "interval": "epoch"},
        }

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        """Lightning's clipping, except that sparse row gradients are clipped by
        :func:`clip_grad_norm` (torch's ``clip_grad_norm_`` takes no sparse tensors)."""
        if not (gradient_clip_val and self.net.words.embedding.sparse):
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        if gradient_clip_algorithm not in (None, "norm"):
            raise ConfigError(
                f"trainer.gradient_clip_algorithm={gradient_clip_algorithm} does not take "
                "sparse row gradients: use norm, or +optimizer.sparse_rows=false"
            )
        clip_grad_norm([p for p in self.parameters() if p.grad is not None], gradient_clip_val)
