"""`NERModule`: training, evaluation and prediction steps around :class:`BiLSTMTagger`.

Steps, metrics and optimizers live here; the network lives in ``nerlab.models``. Scores are
computed on IOB2 strings against the DataModule's gold tags, so an entity type never seen in
training still counts as missed.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from nerlab.data.tag_schemes import (
    allowed_transitions,
    canonical_scheme,
    conlleval_spans,
    from_spans,
)
from nerlab.errors import ConfigError
from nerlab.metrics import EntityF1
from nerlab.models.tagger import BiLSTMTagger, TaggerConfig
from nerlab.optim import FusedNAdam

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "nadam": torch.optim.NAdam,
}


def ids_to_iob2(ids: list[int], tags: list[str]) -> list[str]:
    """Tag ids of the training scheme to IOB2 strings (read the way conlleval reads them)."""
    strings = [tags[i] for i in ids]
    return from_spans(len(strings), conlleval_spans(strings), "iob2")


class NERModule(L.LightningModule):
    """A BiLSTM-CRF tagger trained and scored with Lightning.

    ``model`` holds :class:`TaggerConfig` fields; ``tags`` the tag strings of the training
    scheme in id order; ``entity_types`` the types scored (training types plus any that only
    occur in evaluation gold). ``optimizer`` and ``scheduler`` are plain dicts from the config.
    """

    def __init__(
        self,
        model: dict,
        tags: list[str],
        tag_scheme: str,
        entity_types: list[str],
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        constrain_transitions: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tags = list(tags)
        self.tag_scheme = canonical_scheme(tag_scheme)
        self.config = TaggerConfig.from_dict({**model, "num_tags": len(self.tags)})
        allowed = allowed_transitions(self.tag_scheme, self.tags) if constrain_transitions else None
        self.net = BiLSTMTagger(self.config, allowed)
        self.optimizer_config = dict(optimizer or {"name": "nadam", "lr": 0.002})
        self.scheduler_config = dict(scheduler or {"name": "none"})
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
        cfg = dict(self.optimizer_config)
        name = cfg.pop("name", "nadam").lower()
        if name not in OPTIMIZERS:
            raise ConfigError(f"optimizer.name must be one of {sorted(OPTIMIZERS)}, found {name!r}")
        params = [p for p in self.parameters() if p.requires_grad]
        # one fused kernel per step instead of ~10 passes over the embedding matrix
        fused = cfg.pop("fused", True)
        if name == "nadam":
            # torch has no fused NAdam; ours runs on CPU tensors (nerlab.optim)
            if fused and self.device.type == "cpu" and "foreach" not in cfg:
                optimizer = FusedNAdam(params, **cfg)
            else:
                optimizer = torch.optim.NAdam(params, **{"foreach": True, **cfg})
        else:
            optimizer = OPTIMIZERS[name](params, **({"fused": True} if fused else {}), **cfg)
        sched = dict(self.scheduler_config)
        kind = sched.pop("name", "none")
        if kind in (None, "none"):
            return optimizer
        if kind == "inverse_time":  # lr_t = lr / (1 + decay * epoch), Ma & Hovy / Lample
            decay = float(sched.get("decay", 0.05))
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda e: 1.0 / (1.0 + decay * e)
            )
        elif kind == "cosine":
            total = int(sched.get("epochs", self.trainer.max_epochs or 10))
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, total) / total))
            )
        else:
            raise ConfigError(
                f"scheduler.name must be none, inverse_time or cosine, found {kind!r}"
            )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
