"""The results-table recipes (conf/experiment/conll03_*.yaml) and `nerlab-results`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import compose_cfg
from omegaconf import OmegaConf
from test_train import run_cli, tiny_sweep_args

from nerlab.analysis import results
from nerlab.files import CONF_DIR

MEMORY = {"model.document_memory": True, "data.batch_by_document": True}
COSINE_15 = {
    "trainer.max_epochs": 15,
    "scheduler._target_": "torch.optim.lr_scheduler.CosineAnnealingLR",
    "scheduler._partial_": True,
    "scheduler.T_max": 15,
}
#: What the sentence-level recipe changes against the default (document-level) configuration
SENTENCE = {
    "callbacks.weight_averaging": None,
    "callbacks.early_stopping.patience": 5,
    "model.document_memory": False,
    "data.batch_by_document": False,
    "scheduler": None,
    "trainer.max_epochs": 30,
    "optimizer.lr": 0.002,
}
#: What each recipe must change against the sentence-level recipe (the ablations' base), or
#: for the default and its variant against the default (``DEFAULT_BASED``).
CHANGES = {
    "conll03_default": {},
    "conll03_sentence": {},
    "conll03_char_lstm": {"model.char": "lstm"},
    "conll03_no_char": {"model.char": "none"},
    "conll03_softmax": {"model.crf": False},
    "conll03_bio": {"data.tag_scheme": "bio"},
    "conll03_random_embeddings": {"vectors.name": None, "vectors.extend_vocab": False},
    "conll03_document_memory": MEMORY,
    "conll03_document_encoder": {
        "trainer.max_epochs": 15,
        "scheduler.T_max": 15,
        "callbacks.early_stopping.patience": 15,  # the EMA's: the whole schedule
    },
    "conll03_document_memory_cosine": {**MEMORY, **COSINE_15},
    "conll03_cosine": COSINE_15,
    "conll03_word_dropout": {"model.word_dropout": 0.05},
    "conll03_swa": {
        "callbacks.weight_averaging.method": "swa",
        "callbacks.weight_averaging.start_epoch": 15,
        "callbacks.weight_averaging.half_life": None,
        "callbacks.early_stopping.patience": 5,
    },
    "conll03_no_averaging": {
        "callbacks.weight_averaging": None,
        "callbacks.early_stopping.patience": 5,
    },
    "conll03_char_dropout": {"model.char_dropout": 0.5},
    "conll03_document_context": {"model.document_context": True},
    "conll03_casing": {"model.casing_dims": 10},
    # the batch size is checked without the shrunk test config (it sets data.batch_size=8)
    "conll03_batch32": {"optimizer.lr": 0.002},
    "conll03_mean_pooling": {"model.document_pooling": "mean", "optimizer.lr": 0.002},
}


def _flat(cfg) -> dict:
    from omegaconf import OmegaConf

    from nerlab.training.config import flatten

    return flatten(OmegaConf.to_container(cfg, resolve=True))


DEFAULT_BASED = (
    "conll03_default",
    "conll03_document_encoder",
    "conll03_word_dropout",
    "conll03_char_dropout",
    "conll03_document_context",
    "conll03_casing",
    "conll03_batch32",
    "conll03_mean_pooling",
    "conll03_swa",
    "conll03_no_averaging",
)


def test_the_sentence_recipe_turns_the_document_context_and_the_schedule_off(tmp_path, tiny_corpus):
    default = compose_cfg(tmp_path, tiny_corpus)
    sentence = compose_cfg(tmp_path, tiny_corpus, "experiment=conll03_sentence")
    for key, value in SENTENCE.items():
        assert OmegaConf.select(sentence, key) == value, key
    assert default.model.document_memory and default.data.batch_by_document
    assert default.scheduler.T_max == default.trainer.max_epochs == 22
    assert default.callbacks.weight_averaging.method == "ema"


def test_every_table_row_has_a_recipe_that_changes_only_its_ablation(tmp_path, tiny_corpus):
    assert set(CHANGES) == set(results.RECIPES)
    bases = {
        "default": _flat(compose_cfg(tmp_path, tiny_corpus)),
        "sentence": _flat(compose_cfg(tmp_path, tiny_corpus, "experiment=conll03_sentence")),
    }
    for name, change in CHANGES.items():
        assert (Path(CONF_DIR) / "experiment" / f"{name}.yaml").is_file()
        base = bases["default" if name in DEFAULT_BASED else "sentence"]
        cfg = _flat(compose_cfg(tmp_path, tiny_corpus, f"experiment={name}"))
        differ = {k: cfg.get(k) for k in set(base) | set(cfg) if base.get(k) != cfg.get(k)}
        differ.pop("logger.mlflow.experiment_name", None)
        assert cfg["logger.mlflow.experiment_name"] == name  # the recipe names it
        assert {k: cfg.get(k) for k in change} == change, name  # None: the key is gone
        # nothing else changes (SMALL already drops GloVe); a group in `change` covers its keys
        assert all(any(k == c or k.startswith(f"{c}.") for c in change) for k in differ), name


def test_the_batch_recipes_train_with_the_batch_and_learning_rate_they_were_measured_with(tmp_path):
    """The batch size, checked on the real configs (the shrunk test config sets it to 8)."""
    from nerlab.training.config import compose

    def flat(*overrides):
        return _flat(compose([f"paths.root_dir={tmp_path}", *overrides], output_dir=tmp_path))

    base, cfg = flat(), flat("experiment=conll03_batch32")
    differ = {k for k in set(base) | set(cfg) if base.get(k) != cfg.get(k)}
    assert differ == {"data.batch_size", "optimizer.lr", "logger.mlflow.experiment_name"}
    assert (base["data.batch_size"], cfg["data.batch_size"]) == (64, 32)
    assert (base["optimizer.lr"], cfg["optimizer.lr"]) == (0.003, 0.002)
    # the old default and the sentence-level recipe (benched against flair) keep 32 and 0.002
    for recipe in ("conll03_mean_pooling", "conll03_sentence", "conll03_char_lstm"):
        cfg = flat(f"experiment={recipe}")
        assert (cfg["data.batch_size"], cfg["optimizer.lr"]) == (32, 0.002), recipe
    for recipe, batch, lr in (("gpu", 128, 0.004), ("lample2016", 10, 0.01)):
        cfg = flat(f"experiment={recipe}")
        assert (cfg["data.batch_size"], cfg["optimizer.lr"]) == (batch, lr), recipe


def _log_run(client, experiment_id, seed, f1, per_type=None, status="FINISHED"):
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "seed", str(seed))
    if f1 is not None:
        client.log_metric(run.info.run_id, "test_f1", f1)
    for etype, value in (per_type or {}).items():
        client.log_metric(run.info.run_id, f"test_f1_{etype}", value)
    client.log_metric(run.info.run_id, "epoch", 9)
    client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


def test_summary_counts_the_newest_finished_run_of_each_seed(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("conll03_default", artifact_location=str(tmp_path / "art"))
    _log_run(client, exp, 1, 0.10)  # superseded by the rerun of seed 1 below
    for seed, f1 in ((1, 0.90), (2, 0.92), (3, 0.91)):
        _log_run(client, exp, seed, f1, {"LOC": f1 + 0.01, "PER": f1 + 0.05})
    _log_run(client, exp, 4, 0.99, status="FAILED")  # an unfinished run does not count
    _log_run(client, exp, 5, None)  # nor one without a test score

    table = results.summarize(uri, ["conll03_default", "conll03_bio"])
    row = table.iloc[0]
    assert row["runs"] == 3 and row["seeds"] == "1,2,3"
    assert row["median"] == pytest.approx(0.91) and row["mean"] == pytest.approx(0.91)
    assert row["std"] == pytest.approx(np.std([0.90, 0.92, 0.91], ddof=1))
    assert (row["min"], row["max"]) == (pytest.approx(0.90), pytest.approx(0.92))
    assert row["LOC"] == pytest.approx(0.92) and row["PER"] == pytest.approx(0.96)
    assert np.isnan(row["MISC"]) and row["epochs"] == 9  # the last logged epoch counts them
    assert table.iloc[1]["runs"] == 0  # a recipe not run yet

    markdown = results.to_markdown(table)
    row_line = "| `conll03_default` | 3 | 91.00 | 91.00 | 1.00 | 90.00 | 92.00 | 92.00 | n/a |"
    assert row_line in markdown
    assert "| `conll03_bio` | 0 | n/a |" in markdown


def test_cli_writes_json_and_refuses_a_missing_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("conll03_bio", artifact_location=str(tmp_path / "art"))
    _log_run(client, exp, 1, 0.8)
    out = tmp_path / "table.json"
    cmd = [
        sys.executable,
        "-m",
        "nerlab.cli.results",
        "experiments=conll03_bio",
        f"tracking_uri={uri}",
    ]
    done = subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| `conll03_bio` | 1 | 80.00 |" in done.stdout
    assert json.loads(out.read_text())[0]["median"] == pytest.approx(0.8)

    missing = [
        sys.executable,
        "-m",
        "nerlab.cli.results",
        "--tracking-uri",
        f"sqlite:///{tmp_path}/no.db",
    ]
    done = subprocess.run(missing, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr


def test_a_recipe_sweep_logs_one_run_per_seed_that_the_table_reads(tmp_path, tiny_corpus):
    """`make sweep experiment=conll03_bio`, on a tiny corpus and two seeds."""
    result = run_cli(
        "--multirun",
        "experiment=conll03_bio",
        "seed=1,2",
        *tiny_sweep_args(tmp_path, tiny_corpus),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = results.summarize(f"sqlite:///{tmp_path}/mlruns.db", ["conll03_bio"])
    row = table.iloc[0]
    assert row["runs"] == 2 and row["seeds"] == "1,2"
    assert 0.0 <= row["min"] <= row["median"] <= row["max"] <= 1.0
