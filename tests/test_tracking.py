"""Several runs at once on one MLflow store: the local SQLite file and a real tracking server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import ROOT, free_port, wait_until_up
from test_train import tiny_sweep_args

BIN = Path(sys.executable).parent


def _train_in_parallel(tmp_path: Path, corpus: Path, *extra: str, n: int = 2) -> list[dict]:
    """``n`` trainings started together (1 epoch each); their summaries, in seed order."""
    env = {**os.environ, "NERLAB_ROOT": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [
                str(BIN / "nerlab-train"),
                *tiny_sweep_args(tmp_path, corpus),
                "trainer.max_epochs=1",
                f"seed={seed}",
                *extra,
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(1, n + 1)
    ]
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        summaries.append(json.loads(out.strip().splitlines()[-1]))
    return summaries


def _check_complete(client: mlflow.MlflowClient, summaries: list[dict]) -> None:
    for summary in summaries:
        run = client.get_run(summary["run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.params["seed"] in ("1", "2")
        assert "data_stats.train_sentences" in run.data.params
        assert run.data.metrics["test_f1"] == pytest.approx(summary["test_f1"])
        assert len(client.get_metric_history(run.info.run_id, "val_f1")) == 1
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "classification_report.txt", "summary.json"} <= names


def test_two_trainings_at_once_on_a_new_sqlite_store_both_finish(tmp_path, tiny_corpus):
    summaries = _train_in_parallel(tmp_path, tiny_corpus)
    assert summaries[0]["run_id"] != summaries[1]["run_id"]
    _check_complete(mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns.db"), summaries)


@pytest.mark.slow  # a real server (half a minute); make test keeps the SQLite store's case
def test_two_trainings_log_everything_to_a_tracking_server(tmp_path, tiny_corpus):
    """`make tracking-server` on 127.0.0.1 (SQLite backend, its own artifact root), two runs
    sent to it at the same time with `logger.mlflow.tracking_uri=http://...`, the models
    included."""
    port = free_port()
    store, artifacts = tmp_path / "server.db", tmp_path / "server-artifacts"
    server = subprocess.Popen(
        [
            "make",
            "--no-print-directory",
            "tracking-server",
            f"port={port}",
            f"backend=sqlite:///{store}",
            f"artifacts={artifacts}",
            "workers=1",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: stopped as a whole below
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{uri}/health", server, seconds=90)
        summaries = _train_in_parallel(
            tmp_path,
            tiny_corpus,
            f"logger.mlflow.tracking_uri={uri}",
            "logger.mlflow.log_model=true",
        )
        client = mlflow.MlflowClient(uri)
        _check_complete(client, summaries)
        assert store.is_file() and not (tmp_path / "mlruns.db").exists()  # all on the server
        mlflow.set_tracking_uri(uri)
        try:
            model = mlflow.pyfunc.load_model(f"runs:/{summaries[0]['run_id']}/model")
            assert isinstance(model.predict(["Mary visited Paris ."])[0], list)
        finally:
            mlflow.set_tracking_uri(None)
        stored = {p.name for p in artifacts.rglob("*") if p.is_file()}
        assert {"config.yaml", "model.safetensors", "model_info.json"} <= stored
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
