"""Weight averaging measured inside one training run: a Lightning callback that keeps averaged
copies of the weights beside the model it trains (each a torch ``AveragedModel``), scores every
copy on the validation split after every epoch, and at the end scores on the test split the
weights each variant would be selected with. Training itself is untouched (the copies read the
weights, never write them), so one run gives the trained model and every variant, paired: the
same seed, the same trajectory.

Variants: ``ema<decay>`` (updated after every step, scored from ``first_scored_epoch``) and
``swa_from<N>`` (the mean of the epoch-end weights from epoch N, as ``averaging=swa`` computes
it). Before a variant is scored, its validation score is the trained weights' (as the real
callback validates them before averaging starts). Per variant the JSON keeps ``best`` (the best
validation epoch of the whole run: no early stopping) and ``kept`` (what early stopping with
``patience`` would have kept); an EMA's ``kept`` is only meaningful once it is scored.

    PYTHONPATH=benchmarks make sweep experiment=conll03_no_averaging \
        callbacks.early_stopping.patience=25 logger.mlflow.experiment_name=averaging_probe \
        +callbacks.probe._target_=averaging_probe.AveragingProbe \
        '+callbacks.probe.ema_decays=[0.9997]' '+callbacks.probe.swa_from_epochs=[10,15]'

(``conll03_no_averaging``: the run itself must train and validate the weights as they are.)

writes ``averaging_probe.jsonl`` (validation F1 per epoch) and ``averaging_probe.json`` (the
selected epochs and their test F1) into each run directory;
``python benchmarks/averaging_probe.py RUN_DIR...`` prints each variant's test F1 per run.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import lightning as L
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from nerlab.training.metrics import EntityF1


class AveragingProbe(L.Callback):
    def __init__(
        self,
        ema_decays: tuple[float, ...] = (0.999,),
        swa_from_epochs: tuple[int, ...] = (10,),
        first_scored_epoch: int = 8,
        patience: int = 5,
    ) -> None:
        self.ema_decays = tuple(ema_decays)
        self.swa_from_epochs = tuple(swa_from_epochs)  # 1-based epochs
        self.first_scored_epoch = first_scored_epoch
        self.patience = patience
        self.copies: dict[str, AveragedModel] = {}
        # per variant: the best weights so far, and the weights early stopping would keep
        self.best: dict[str, dict] = {}
        self.kept: dict[str, dict] = {}
        self.path: Path | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        net = pl_module.net
        for decay in self.ema_decays:
            self.copies[f"ema{decay}"] = AveragedModel(
                net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False
            )
        for start in self.swa_from_epochs:
            self.copies[f"swa_from{start}"] = AveragedModel(net, use_buffers=False)
        for copy in self.copies.values():
            copy.eval()
        self.path = Path(trainer.default_root_dir) / "averaging_probe.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        for name, copy in self.copies.items():
            if name.startswith("ema"):
                copy.update_parameters(pl_module.net)

    @torch.no_grad()
    def _score(self, pl_module, net, trainer, stage: str) -> float:
        from nerlab.data.tag_schemes import ids_to_iob2

        datamodule = trainer.datamodule
        metric = EntityF1(pl_module.metrics[stage].types)
        gold = datamodule.splits[stage].gold
        was_training = net.training
        net.eval()
        for batch in datamodule.eval_dataloader(stage):
            batch = {k: v.to(pl_module.device) for k, v in batch.items()}
            mask = batch["mask"]
            ids = net.decode(net(batch), mask).tolist()
            lengths = mask.sum(1).tolist()
            predictions = [
                ids_to_iob2(r[:n], pl_module.tags) for r, n in zip(ids, lengths, strict=True)
            ]
            metric.update(predictions, [gold[i] for i in batch["indices"].tolist()])
        net.train(was_training)
        return float(metric.compute()["f1"])

    @staticmethod
    def _state(net) -> dict:
        return {k: v.detach().clone() for k, v in net.state_dict().items()}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1  # 1-based
        for name, copy in self.copies.items():
            if name.startswith("swa_from") and epoch >= int(name[len("swa_from") :]):
                copy.update_parameters(pl_module.net)
        raw_val = float(trainer.callback_metrics["val_f1"])
        row: dict = {"epoch": epoch, "raw": raw_val}
        for name in ["raw", *self.copies]:
            copy = self.copies.get(name)
            averaged = (
                copy is not None and epoch >= self.first_scored_epoch and copy.n_averaged.item() > 0
            )
            # before a variant is scored, the real callback validates the trained weights
            net = copy.module if averaged else pl_module.net
            val = self._score(pl_module, net, trainer, "val") if averaged else raw_val
            if averaged:
                row[name] = val
            best = self.best.get(name)
            if best is None or val > best["val"]:
                self.best[name] = {"val": val, "epoch": epoch, "state": self._state(net)}
                best = self.best[name]
            if name not in self.kept and epoch - best["epoch"] >= self.patience:
                self.kept[name] = dict(best)  # early stopping with this patience stops here
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def on_train_end(self, trainer, pl_module) -> None:
        scratch = copy_module(pl_module.net)
        summary = {}
        for name, best in self.best.items():
            kept = self.kept.get(name, best)
            entry = {}
            for label, chosen in (("kept", kept), ("best", best)):
                scratch.load_state_dict(chosen["state"])
                entry[label] = {
                    "val": chosen["val"],
                    "epoch": chosen["epoch"],
                    "test": self._score(pl_module, scratch, trainer, "test"),
                }
            summary[name] = entry
        Path(trainer.default_root_dir, "averaging_probe.json").write_text(
            json.dumps(summary, indent=1)
        )


def copy_module(net):
    import copy

    return copy.deepcopy(net)


def summarise(directories: list[str]) -> None:
    runs = [json.loads(Path(d, "averaging_probe.json").read_text()) for d in directories]
    for name in runs[0]:
        for label in ("kept", "best"):
            tests = [100 * run[name][label]["test"] for run in runs if name in run]
            cells = [
                f"{100 * run[name][label]['test']:.2f} (ep {run[name][label]['epoch']})"
                for run in runs
                if name in run
            ]
            median = statistics.median(tests)
            print(f"{name:14s} {label:4s} median {median:.2f}  " + "  ".join(cells))


if __name__ == "__main__":
    summarise(sys.argv[1:])
