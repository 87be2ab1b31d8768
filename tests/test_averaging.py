"""Weight averaging (`callbacks.weight_averaging`): which weights a run validates, checkpoints,
tests, saves and resumes from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import SMALL, compose_cfg
from safetensors.torch import load_file

from nerlab.errors import ConfigError
from nerlab.training.averaging import WeightAveraging
from nerlab.training.run import (
    build_data_and_model,
    build_trainer,
    evaluate_selected,
    prepare_run,
    selected_checkpoint,
    train,
)


def averaging(method: str, start_epoch: int, decay: float | None = None) -> list[str]:
    """The overrides of `make train averaging=METHOD` with these settings."""
    overrides = [f"averaging={method}", f"callbacks.weight_averaging.start_epoch={start_epoch}"]
    if decay is None:
        return overrides
    return [
        *overrides,
        f"callbacks.weight_averaging.decay={decay}",
        "callbacks.weight_averaging.half_life=null",
    ]


def weights(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


class Recorder(L.Callback):
    """The trained weights after every step and epoch, and the weights each validation scored
    (it runs after the averaging callback, so it sees what validation sees)."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self.epochs: list[dict] = []
        self.validated: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append(weights(pl_module.net))

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.validated.append(weights(pl_module.net))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append(weights(pl_module.net))


def fit(cfg) -> tuple[L.Trainer, object, object, Recorder, object]:
    prepare_run(cfg)
    datamodule, module, _ = build_data_and_model(cfg, load_vectors=False)
    trainer, checkpoint, _ = build_trainer(cfg, None)
    recorder = Recorder()
    trainer.callbacks.append(recorder)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    return trainer, module, datamodule, recorder, checkpoint


def mean(states: list[dict]) -> dict:
    return {k: sum(s[k] for s in states) / len(states) for k in states[0]}


def test_swa_validates_checkpoints_tests_and_saves_the_mean_of_the_epoch_weights(
    tmp_path, tiny_corpus
):
    cfg = compose_cfg(
        tmp_path,
        tiny_corpus,
        "trainer.max_epochs=4",
        "callbacks.early_stopping.patience=10",
        "callbacks.model_checkpoint.save_top_k=-1",  # a checkpoint every epoch
        "logger=csv",
        *averaging("swa", start_epoch=3),
    )
    trainer, module, datamodule, seen, checkpoint = fit(cfg)
    assert len(seen.epochs) == len(seen.validated) == 4
    # before epoch 3: the trained weights; from it: the mean of the epoch-end weights so far,
    # the epoch's own included
    for epoch in (0, 1, 2):
        assert_same(seen.validated[epoch], seen.epochs[epoch])
    assert_same(seen.validated[3], mean(seen.epochs[2:4]))
    assert not torch.equal(seen.epochs[3]["projection.weight"], seen.epochs[2]["projection.weight"])
    # after training the module holds the average
    assert_same(weights(module.net), mean(seen.epochs[2:4]))

    # the last epoch's checkpoint: the average to test and serve, the trained weights to
    # resume from
    last = torch.load(Path(checkpoint.dirpath) / "epoch003.ckpt", weights_only=True)
    prefix = "net."
    saved = {k[len(prefix) :]: v for k, v in last["state_dict"].items() if k.startswith(prefix)}
    assert_same(saved, mean(seen.epochs[2:4]))
    current = last["current_model_state"]
    assert_same(
        {k[len(prefix) :]: v for k, v in current.items() if k.startswith(prefix)}, seen.epochs[3]
    )

    # testing the selected checkpoint tests the weights it validated (not the trained ones)
    _, best_path = selected_checkpoint(trainer, checkpoint)
    best_epoch = int(Path(best_path).stem.removeprefix("epoch"))
    evaluate_selected(cfg, trainer, module, datamodule, best_path)
    assert_same(weights(module.net), seen.validated[best_epoch])


def test_a_run_saves_the_averaged_weights_and_resumes_the_average(tmp_path, tiny_corpus):
    common = [
        "callbacks.early_stopping.patience=10",
        "callbacks.model_checkpoint.save_top_k=-1",
        "logger=csv",
        *averaging("swa", start_epoch=2),
    ]
    # the whole run: the saved model is the weights of the selected checkpoint
    cfg = compose_cfg(tmp_path / "a", tiny_corpus, "trainer.max_epochs=3", *common)
    summary = train(cfg)
    best = torch.load(summary["best_checkpoint"], weights_only=True)["state_dict"]
    saved = load_file(Path(summary["model_dir"]) / "model.safetensors")
    assert_same(saved, {k.removeprefix("net."): v for k, v in best.items() if k.startswith("net.")})

    # two epochs, then resumed for a third: the average continues from the checkpoint
    cfg = compose_cfg(tmp_path / "b", tiny_corpus, "trainer.max_epochs=2", *common)
    _, _, _, first, checkpoint = fit(cfg)
    last = Path(checkpoint.dirpath) / "last.ckpt"
    cfg = compose_cfg(
        tmp_path / "b", tiny_corpus, "trainer.max_epochs=3", f"ckpt_path={last}", *common
    )
    _, module, _, resumed, _ = fit(cfg)
    assert len(resumed.epochs) == 1
    assert_same(weights(module.net), mean([first.epochs[1], resumed.epochs[0]]))


@pytest.mark.parametrize("setting", ["decay", "half_life"])
def test_ema_averages_every_step_from_its_start_epoch(tmp_path, tiny_corpus, setting):
    given = {"decay": {"decay": 0.5}, "half_life": {}}[setting]
    cfg = compose_cfg(
        tmp_path,
        tiny_corpus,
        "trainer.max_epochs=2",
        "callbacks.early_stopping.patience=10",
        "logger=csv",
        *averaging("ema", start_epoch=2, **given),
        *([] if given else ["callbacks.weight_averaging.half_life=0.25"]),
    )
    trainer, module, _, seen, _ = fit(cfg)
    # half_life: a step's weight halves after that fraction of the run's optimizer steps
    decay = 0.5 if setting == "decay" else 0.5 ** (1 / (0.25 * len(seen.steps)))
    assert trainer.estimated_stepping_batches == len(seen.steps)
    per_epoch = len(seen.steps) // 2
    # epoch 1 validates the trained weights; from epoch 2 every step moves the average
    assert_same(seen.validated[0], seen.epochs[0])
    expected = seen.steps[per_epoch]
    for step in seen.steps[per_epoch + 1 :]:
        expected = {k: expected[k] + (1 - decay) * (step[k] - expected[k]) for k in step}
    assert_same(seen.validated[1], expected)
    assert_same(weights(module.net), expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "mean"}, "method must be one of swa, ema, found 'mean'"),
        ({"start_epoch": 0}, "start_epoch must be >= 1, found 0"),
        ({"decay": 1.0}, "decay must be in (0, 1), found 1.0"),
        ({"half_life": 0.0}, "half_life must be in (0, 1], found 0.0"),
        ({"method": "ema"}, "ema needs exactly one of decay and half_life, found decay=None"),
        (
            {"method": "ema", "decay": 0.9, "half_life": 0.2},
            "ema needs exactly one of decay and half_life, found decay=0.9, half_life=0.2",
        ),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        WeightAveraging(**kwargs)


def test_a_bad_setting_on_the_command_line_is_one_line_and_no_run(tmp_path, tiny_corpus):
    process = subprocess.run(
        [
            str(Path(sys.executable).parent / "nerlab-train"),
            "data=bio",
            f"data.dir={tiny_corpus}",
            *SMALL,
            "averaging=swa",
            "callbacks.weight_averaging.method=mean",
        ],
        cwd=tmp_path,
        env={**os.environ, "NERLAB_ROOT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert process.returncode == 2, process.stderr[-2000:]
    errors = [line for line in process.stderr.splitlines() if "error:" in line]
    assert errors == [
        "nerlab-train: error: callbacks.weight_averaging.method must be one of swa, ema, "
        "found 'mean'"
    ]
    assert "Traceback" not in process.stderr and process.stdout == ""
    assert not (tmp_path / "mlruns.db").exists()
