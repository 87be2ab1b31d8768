"""`make train` / `nerlab-train`: composed configs, MLflow records, saved models, CLI errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import ROOT, SMALL, compose_cfg

from nerlab.cli.train import translate_original_flags
from nerlab.training.run import train

BIN = Path(sys.executable).parent


def test_train_logs_a_complete_run_and_saves_the_model(tmp_path, tiny_corpus):
    cfg = compose_cfg(
        tmp_path, tiny_corpus, "trainer.max_epochs=3", "logger.mlflow.experiment_name=t"
    )
    summary = train(cfg)
    assert set(summary) >= {"run_id", "model_dir", "test_f1", "val_f1"}
    assert 0.0 <= summary["test_f1"] <= 1.0 and 0.0 <= summary["val_f1"] <= 1.0

    model_dir = Path(summary["model_dir"])
    info = json.loads((model_dir / "model_info.json").read_text())
    assert info["tag_scheme"] == "iobes" and info["weights"] == "model.safetensors"
    assert (model_dir / "model.safetensors").stat().st_size > 0

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    run = client.get_run(summary["run_id"])
    metrics = run.data.metrics
    for key in (
        "train_loss",
        "val_f1",
        "val_precision",
        "val_recall",
        "test_f1",
        "test_precision",
        "test_recall",
        "test_f1_PER",
        "test_f1_LOC",
        "test_f1_ORG",
    ):
        assert key in metrics, key
    assert metrics["test_f1"] == pytest.approx(summary["test_f1"], abs=1e-6)
    assert metrics["val_f1_best"] == pytest.approx(summary["val_f1"], abs=1e-6)
    history = client.get_metric_history(run.info.run_id, "val_f1")
    assert [m.step for m in history] and len(history) == 3
    params = run.data.params
    assert params["model.char"] == "cnn" and params["data.tag_scheme"] == "iobes"
    assert params["trainer.max_epochs"] == "3" and int(params["data_stats.train_sentences"]) == 120
    assert params["data_source.origin"] == "data.dir"
    assert params["data_source.dir"] == str(tiny_corpus.resolve())
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "config.yaml",
        "overrides.yaml",
        "classification_report.txt",
        "confusion_matrix.png",
    } <= artifacts
    # the pyfunc model: a model from code whose artifact is the model directory
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns.db")
    try:
        model = mlflow.pyfunc.load_model(f"runs:/{summary['run_id']}/model")
        entities = model.predict(["John lives in London.", "Mary visited Paris today ."])
    finally:
        mlflow.set_tracking_uri(None)
    assert len(entities) == 2 and all(isinstance(e, list) for e in entities)
    for text, found in zip(
        ["John lives in London.", "Mary visited Paris today ."], entities, strict=True
    ):
        for entity in found:
            assert text[entity["start"] : entity["end"]] == entity["text"]
            assert entity["label"] in {"PER", "LOC", "ORG"} and 0 < entity["confidence"] <= 1
    # the store is the one fixed SQLite file at the root, whatever the run directory
    assert (tmp_path / "mlruns.db").exists() and not (tmp_path / "run" / "mlruns.db").exists()


def test_small_model_overfits_to_f1_one(tmp_path, tiny_corpus):
    for name in ("valid.txt", "test.txt"):
        (tiny_corpus / name).write_text((tiny_corpus / "train.txt").read_text())
    cfg = compose_cfg(
        tmp_path,
        tiny_corpus,
        "trainer.max_epochs=25",
        "model.dropout=0.0",
        "data.singleton_unk_prob=0.0",
        "optimizer.lr=0.02",
        "logger={}",
        "callbacks.early_stopping.patience=100",
    )
    summary = train(cfg)
    assert summary["test_f1"] == 1.0


def run_cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "NERLAB_ROOT": str(cwd)}
    return subprocess.run(
        [str(BIN / "nerlab-train"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tiny_sweep_args(tmp_path: Path, corpus: Path) -> list[str]:
    """One-epoch runs of the small model on ``corpus``, everything written under ``tmp_path``."""
    return [
        "data=bio",
        f"data.dir={corpus}",
        "trainer.max_epochs=1",
        f"paths.root_dir={tmp_path}",
        "logger.mlflow.log_model=false",
        *SMALL,
    ]


BAD_FILES = [
    ("EU B-ORG\nrejects\n", "train.txt:2: expected at least 2 whitespace-separated columns"),
    (
        "EU B-ORG\nPeter B_PER\n",
        "train.txt:2: expected a tag like O, B-PER or I-PER in column -1, found 'B_PER'",
    ),
    (b"EU B-ORG\ncaf\xe9 O\n", "train.txt:2: expected UTF-8 text, found the bytes b'\\xe9"),
    ("\n\n", "train.txt: expected at least one sentence, found an empty file"),
    (None, ": missing train.txt"),
]


def test_bad_training_files_fail_with_one_line_and_no_traceback(tmp_path, tiny_corpus):
    # one nerlab-train per bad file, all started at once (each spends its time importing)
    runs = []
    for i, (content, message) in enumerate(BAD_FILES):
        corpus = tmp_path / f"corpus{i}"
        shutil.copytree(tiny_corpus, corpus)
        train_file = corpus / "train.txt"
        if content is None:
            train_file.unlink()
        elif isinstance(content, bytes):
            train_file.write_bytes(content)
        else:
            train_file.write_text(content)
        cwd = tmp_path / f"run{i}"
        cwd.mkdir()
        process = subprocess.Popen(
            [str(BIN / "nerlab-train"), "data=bio", f"data.dir={corpus}", *SMALL],
            cwd=cwd,
            env={**os.environ, "NERLAB_ROOT": str(cwd)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runs.append((process, message))
    for process, message in runs:
        _, stderr = process.communicate(timeout=180)
        assert process.returncode == 2, (message, stderr[-2000:])
        assert message in stderr
        assert "Traceback" not in stderr
        lines = [line for line in stderr.splitlines() if "error:" in line]
        assert len(lines) == 1 and lines[0].startswith("nerlab-train: error: ")


def test_a_mistyped_data_dir_fails_fast_and_logs_no_run(tmp_path, tiny_corpus):
    """The default data config with data.dir set: no fallback on CoNLL-2003's local copy."""
    empty = tmp_path / "empty"
    empty.mkdir()
    dev = tmp_path / "dev"
    shutil.copytree(tiny_corpus, dev)
    (dev / "valid.txt").rename(dev / "dev.txt")
    cases = [
        (tmp_path / "nonexistent", "nonexistent: no such folder"),
        (empty, "empty: missing train.txt, valid.txt, test.txt"),
        (dev, "dev: missing valid.txt (data.val_file=null holds out part of train"),
    ]
    runs = []
    for i, (folder, message) in enumerate(cases):
        cwd = tmp_path / f"run{i}"
        cwd.mkdir()
        process = subprocess.Popen(
            [str(BIN / "nerlab-train"), f"data.dir={folder}", *SMALL],
            cwd=cwd,
            env={**os.environ, "NERLAB_ROOT": str(cwd)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runs.append((process, folder, message, cwd))
    for process, folder, message, cwd in runs:
        stdout, stderr = process.communicate(timeout=180)
        assert process.returncode == 2, (message, stderr[-2000:])
        errors = [line for line in stderr.splitlines() if "error:" in line]
        assert len(errors) == 1
        assert errors[0].startswith(f"nerlab-train: error: data.dir={folder}: ")
        assert message in errors[0] and "Traceback" not in stderr
        assert "local copy" not in stderr and stdout == ""
        assert not (cwd / "mlruns.db").exists()


def test_ill_formed_tags_can_be_refused(tmp_path, tiny_corpus):
    (tiny_corpus / "train.txt").write_text("c B-LOC\n\na O\nb I-PER\n")
    result = run_cli(
        "data=bio",
        f"data.dir={tiny_corpus}",
        "data.on_invalid=error",
        *SMALL,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert (
        "train.txt:4: expected a well-formed IOB2 sequence, found 'I-PER' after 'O'"
        in result.stderr
    )


def test_unknown_override_is_refused_before_training(tmp_path):
    result = run_cli("trainer.max_epochz=3", cwd=tmp_path, timeout=60)
    assert result.returncode != 0
    assert "max_epochz" in result.stderr and "Traceback" not in result.stderr
    result = run_cli(
        "model.entity_tagger_lstm_dims=-4",
        "data=bio",
        f"data.dir={tmp_path}",
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "model.entity_tagger_lstm_dims must be positive, found -4" in result.stderr


def test_original_flags_translate_to_overrides(tmp_path):
    overrides = translate_original_flags(
        [
            "--train_file",
            "a.txt",
            "--test_file",
            "b.txt",
            "-e",
            "5",
            "-b",
            "10",
            "--tag_num",
            "3",
            "--use_cudnn",
            "model.dropout=0.3",
        ]
    )
    assert overrides[:3] == ["data=bio", "data.dir=.", "data.val_file=null"]
    assert f"data.train_file={Path('a.txt').resolve()}" in overrides
    assert "trainer.max_epochs=5" in overrides and "data.batch_size=10" in overrides
    assert (
        "data.tag_column=3" in overrides
        and "trainer=gpu" in overrides
        and "model.dropout=0.3" in overrides
    )


def test_make_train_passes_overrides_literally_and_prints_the_contract_json(tmp_path, tiny_corpus):
    overrides = [
        "trainer.max_epochs=1",
        "data.batch_size=64",
        "model=char_cnn",
        "data=bio",
        f"data.dir={tiny_corpus}",
        "vectors=none",
        f"paths.root_dir={tmp_path}",
        "trainer.enable_progress_bar=false",
    ]
    dry = subprocess.run(
        ["make", "-n", "train", *overrides], cwd=ROOT, capture_output=True, text=True
    )
    assert dry.returncode == 0
    command = [line for line in dry.stdout.splitlines() if "nerlab-train" in line][-1]
    for override in overrides:
        assert override in command
    result = subprocess.run(
        ["make", "--no-print-directory", "train", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"run_id", "model_dir", "test_f1", "val_f1"} <= set(summary)
    assert Path(summary["model_dir"], "model_info.json").exists()
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    assert client.get_run(summary["run_id"]).data.params["data.batch_size"] == "64"


def test_original_flag_command_runs(tmp_path, tiny_corpus):
    result = run_cli(
        "--train_file",
        str(tiny_corpus / "train.txt"),
        "--test_file",
        str(tiny_corpus / "test.txt"),
        "-e",
        "1",
        "-b",
        "10",
        "--model_path",
        str(tmp_path / "w.safetensors"),
        "--model_info_path",
        str(tmp_path / "info.json"),
        "vectors=none",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["test_f1"] is not None
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["weights"] == "w.safetensors" and (tmp_path / "w.safetensors").exists()


def test_a_test_type_unseen_in_training_counts_as_missed(tmp_path, tiny_corpus):
    test = tiny_corpus / "test.txt"
    test.write_text(test.read_text() + "Gizmo B-PRODUCT\nrocks O\n")
    result = run_cli(
        "data=bio",
        f"data.dir={tiny_corpus}",
        "trainer.max_epochs=1",
        f"paths.root_dir={tmp_path}",
        *SMALL,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "test.txt:" in result.stderr
        and "entity type PRODUCT never occurs in the training data" in result.stderr
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    metrics = client.get_run(summary["run_id"]).data.metrics
    assert metrics["test_f1_PRODUCT"] == 0.0 and metrics["test_support_PRODUCT"] == 1.0


def test_resume_after_a_kill_continues_the_same_mlflow_run(tmp_path, tiny_corpus):
    import signal
    import time

    args = [
        "data=bio",
        f"data.dir={tiny_corpus}",
        "trainer.max_epochs=6",
        f"paths.root_dir={tmp_path}",
        "logger.mlflow.log_model=false",
        *SMALL,
    ]
    env = {**os.environ, "NERLAB_ROOT": str(tmp_path)}
    proc = subprocess.Popen(
        [str(BIN / "nerlab-train"), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    last = None
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "outputs").glob("train/runs/*/checkpoints/last.ckpt"))
        if found:
            last = found[0]
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last is not None, "no checkpoint appeared before the run ended"
    run_id = (last.parent.parent / "mlflow_run_id.txt").read_text().strip()

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    done_before = len(client.get_metric_history(run_id, "val_f1"))
    assert done_before < 6

    result = run_cli(*args, "ckpt_path=last", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["run_id"] == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    epochs = [int(m.value) for m in client.get_metric_history(run_id, "epoch")]
    assert max(epochs) == 6  # trained to the end, continuing the killed run's epochs
    assert len(client.get_metric_history(run_id, "val_f1")) >= 6
    assert "test_f1" in run.data.metrics


@pytest.mark.slow  # make test covers the same through the launchers (test_launchers.py)
def test_a_two_job_multirun_writes_two_grouped_runs(tmp_path, tiny_corpus):
    result = run_cli(
        "--multirun",
        "logger.mlflow.experiment_name=sweep",
        "model.char=cnn,lstm",
        *tiny_sweep_args(tmp_path, tiny_corpus),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    assert len(runs) == 2
    assert {r.data.params["model.char"] for r in runs} == {"cnn", "lstm"}
    assert len({r.data.tags["sweep_id"] for r in runs}) == 1
    assert {r.data.tags["sweep_job"] for r in runs} == {"0", "1"}
    assert all("val_f1" in r.data.metrics for r in runs)


@pytest.mark.slow  # make test covers the same through the launchers (test_launchers.py)
def test_optuna_search_runs_trials_as_grouped_mlflow_runs(tmp_path, tiny_corpus):
    result = run_cli(
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=1",
        *tiny_sweep_args(tmp_path, tiny_corpus),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    runs = client.search_runs([client.get_experiment_by_name("nerlab-optuna").experiment_id])
    assert len(runs) == 2 and len({r.data.tags["sweep_id"] for r in runs}) == 1
    lrs = {float(r.data.params["optimizer.lr"]) for r in runs}
    assert all(0.0005 <= lr <= 0.01 for lr in lrs)
    best = sorted(tmp_path.glob("outputs/train/multiruns/*/optimization_results.yaml"))
    assert best and "best_value" in best[-1].read_text()


DIES_WRITING_A_CHECKPOINT = """
import os, signal, sys
from lightning.pytorch.plugins.io import TorchCheckpointIO

original, calls = TorchCheckpointIO.save_checkpoint, []


def dying(self, checkpoint, path, storage_options=None):
    calls.append(path)
    if len(calls) == 3:  # epoch 1's first file: half of it written, then the process dies
        with open(path, "wb") as fh:
            fh.write(b"PK half a checkpoint")
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, checkpoint, path, storage_options)


TorchCheckpointIO.save_checkpoint = dying
from nerlab.cli.train import main

sys.argv = ["nerlab-train", *sys.argv[1:]]
main()
"""


@pytest.mark.slow  # make test keeps the resume after a kill between checkpoints
def test_a_run_killed_while_writing_a_checkpoint_resumes_from_the_last_whole_one(
    tmp_path, tiny_corpus
):
    import torch

    args = [
        *tiny_sweep_args(tmp_path, tiny_corpus),
        "trainer.max_epochs=4",
        "~callbacks.early_stopping",
    ]
    killed = subprocess.run(
        [sys.executable, "-c", DIES_WRITING_A_CHECKPOINT, *args],
        cwd=tmp_path,
        env={**os.environ, "NERLAB_ROOT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    checkpoints = next((tmp_path / "outputs").glob("train/runs/*/checkpoints"))
    assert [p.name for p in checkpoints.glob(".*.tmp")]  # the write that was cut short
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 0  # the previous checkpoint, whole
    run_id = (checkpoints.parent / "mlflow_run_id.txt").read_text().strip()

    result = run_cli(*args, "ckpt_path=last", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["run_id"] == run_id and summary["epochs"] == 4
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    assert client.get_run(run_id).info.status == "FINISHED"
    assert max(int(m.value) for m in client.get_metric_history(run_id, "epoch")) == 4
