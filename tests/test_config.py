"""The Hydra config: instantiable parts are targets, settings sit in their group, recipes repeat
nothing, and the older spellings keep working."""

from __future__ import annotations

import functools

import pytest
import torch
import yaml
from conftest import ROOT, compose_cfg
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from nerlab.training.metrics import MONITOR, MONITOR_MODE
from nerlab.training.optim import FusedNAdam
from nerlab.training.schedules import InverseTimeDecay
from nerlab.training.tracking import SharedStoreMLFlowLogger

CONF = ROOT / "conf"


def test_callbacks_monitor_the_metric_the_model_logs(tmp_path, tiny_corpus):
    cfg = compose_cfg(tmp_path, tiny_corpus)
    assert (cfg.monitor, cfg.monitor_mode) == (MONITOR, MONITOR_MODE)
    for name in ("model_checkpoint", "early_stopping"):
        assert cfg.callbacks[name].monitor == MONITOR
        assert cfg.callbacks[name].mode == MONITOR_MODE
        callback = instantiate(cfg.callbacks[name])
        assert callback.monitor == MONITOR


@pytest.mark.parametrize(
    ("group", "expected", "kwargs"),
    [
        ("nadam", FusedNAdam, {"lr": 0.003}),
        ("adam", torch.optim.Adam, {"lr": 0.001}),
        ("adamw", torch.optim.AdamW, {"lr": 0.001}),
        ("sgd", torch.optim.SGD, {"lr": 0.01}),
    ],
)
def test_optimizers_are_partial_targets(tmp_path, tiny_corpus, group, expected, kwargs):
    cfg = compose_cfg(tmp_path, tiny_corpus, f"optimizer={group}")
    assert cfg.optimizer._partial_ is True
    factory = instantiate(cfg.optimizer)
    assert isinstance(factory, functools.partial)
    optimizer = factory([torch.nn.Parameter(torch.zeros(3))])
    assert type(optimizer) is expected
    assert optimizer.defaults["lr"] == kwargs["lr"]


def test_schedulers_are_partial_targets_stepped_per_epoch(tmp_path, tiny_corpus):
    # the default anneals over its epochs; the sentence-level recipe keeps it constant
    default = compose_cfg(tmp_path, tiny_corpus)
    assert default.scheduler.T_max == default.trainer.max_epochs == 22
    assert compose_cfg(tmp_path, tiny_corpus, "experiment=conll03_sentence").scheduler is None
    param = torch.nn.Parameter(torch.zeros(1))
    for group, epochs, expected in (
        ("inverse_time", 3, 0.1 / (1 + 0.05 * 3)),
        ("cosine", 5, 0.0),  # T_max = trainer.max_epochs = 5: the end of the cosine
    ):
        cfg = compose_cfg(
            tmp_path, tiny_corpus, f"scheduler={group}", "optimizer.lr=0.1", "trainer.max_epochs=5"
        )
        optimizer = instantiate(cfg.optimizer)([param])
        scheduler = instantiate(cfg.scheduler)(optimizer)
        if group == "inverse_time":
            assert isinstance(scheduler, InverseTimeDecay)
        for _ in range(epochs):
            optimizer.step()
            scheduler.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, abs=1e-12)


def test_mlflow_settings_live_in_the_logger_group(tmp_path, tiny_corpus):
    cfg = compose_cfg(tmp_path, tiny_corpus, "logger.mlflow.experiment_name=old-style")
    assert "mlflow" not in cfg  # no top-level block any more
    block = cfg.logger.mlflow
    assert block.experiment_name == "old-style"
    assert block.tracking_uri == f"sqlite:///{tmp_path}/mlruns.db"
    logger = instantiate(block)
    assert isinstance(logger, SharedStoreMLFlowLogger)
    assert logger.log_pyfunc_model is True and logger.store_uri == block.tracking_uri
    with pytest.raises(ConfigCompositionException, match="mlflow.experiment_name"):
        compose_cfg(tmp_path, tiny_corpus, "mlflow.experiment_name=x")  # one spelling


def test_recipes_write_the_seed_sweep_once_and_name_their_experiment(tmp_path, tiny_corpus):
    from nerlab.analysis.results import RECIPES

    recipes = sorted((CONF / "experiment").glob("conll03_*.yaml"))
    assert {p.stem for p in recipes} == set(RECIPES)  # every recipe is a row of the table
    sweeps = [p.name for p in recipes if "sweeper" in p.read_text()]
    assert sweeps == ["conll03_default.yaml"]
    first = {
        p.stem: yaml.safe_load(p.read_text())["defaults"][0]
        for p in recipes
        if p.stem != "conll03_default"
    }
    for path in recipes:
        name, chain = path.stem, [path.stem]
        while name != "conll03_default":  # each builds on the default, maybe through others
            name = first[name]
            assert name not in chain, chain
            chain.append(name)
        cfg = compose_cfg(tmp_path, tiny_corpus, f"experiment={path.stem}")
        assert cfg.logger.mlflow.experiment_name == path.stem
