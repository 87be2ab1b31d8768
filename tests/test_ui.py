"""`make ui`: the real MLflow server, started with the Makefile's own command on a store holding
two runs, serves both runs, their params and their `val_f1` histories through its REST API."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT

RUNS = {
    "cnn": {"params": {"model.char": "cnn", "data.batch_size": "32"}, "val_f1": [0.71, 0.83, 0.86]},
    "lstm": {
        "params": {"model.char": "lstm", "data.batch_size": "32"},
        "val_f1": [0.69, 0.8, 0.88],
    },
}


def ui_command(store: Path, port: int) -> list[str]:
    """The command `make ui` runs (read with ``make -n``), pointed at ``store`` and ``port``."""
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/.installed", "ui"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    line = next(x for x in printed.splitlines() if "mlflow" in x and " ui " in x)
    args = shlex.split(line)
    assert args[args.index("--backend-store-uri") + 1] == f"sqlite:///{ROOT}/mlruns.db"
    assert args[args.index("--host") + 1] == "127.0.0.1"
    args[0] = str(Path(sys.executable).parent / "mlflow")  # this environment's mlflow
    args[args.index("--backend-store-uri") + 1] = f"sqlite:///{store}"
    args[args.index("--port") + 1] = str(port)
    return [*args, "--workers", "1"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def store(tmp_path) -> tuple[Path, dict[str, str]]:
    """An SQLite store with experiment ``nerlab`` and two finished runs; returns the store and
    the run id of each."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    path = tmp_path / "mlruns.db"
    client = MlflowClient(f"sqlite:///{path}")
    experiment = client.create_experiment("nerlab", artifact_location=str(tmp_path / "art"))
    ids = {}
    for name, run in RUNS.items():
        created = client.create_run(experiment, run_name=f"nerlab model.char={name}")
        run_id = created.info.run_id
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[
                Metric("val_f1", value, now + step, step * 100)
                for step, value in enumerate(run["val_f1"], start=1)
            ],
            params=[Param(k, v) for k, v in run["params"].items()],
        )
        client.set_terminated(run_id)
        ids[name] = run_id
    return path, ids


def get(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def server(store, tmp_path):
    """`make ui`'s server on a free port of 127.0.0.1; yields its base URL and the run ids."""
    path, ids = store
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        ui_command(path, port),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the workers stop with it
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},  # 127.0.0.1 only
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow ui exited {proc.returncode}:\n{_tail(tmp_path)}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow ui did not answer within 90 s:\n{_tail(tmp_path)}")
            time.sleep(0.5)
        yield base, ids
    finally:
        _stop(proc)
        log.close()


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "server.log").read_text()[-3000:]


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's process group (uvicorn and MLflow's job consumers with it)."""
    group = proc.pid  # start_new_session: the group id is the server's pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        proc.poll()
        try:
            os.killpg(group, 0)  # anyone left in the group?
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(group, signal.SIGKILL)
    proc.wait(timeout=10)


def test_make_ui_serves_both_runs_their_params_and_val_f1_histories(server):
    base, ids = server
    api = f"{base}/api/2.0/mlflow"
    query = urllib.parse.urlencode({"experiment_name": "nerlab"})
    experiment = get(f"{api}/experiments/get-by-name?{query}")["experiment"]
    found = get(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    assert sorted(r["info"]["run_id"] for r in found) == sorted(ids.values())
    for name, run_id in ids.items():
        run = next(r for r in found if r["info"]["run_id"] == run_id)
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert params == RUNS[name]["params"]
        assert run["info"]["status"] == "FINISHED"
        query = urllib.parse.urlencode({"run_id": run_id, "metric_key": "val_f1"})
        history = get(f"{api}/metrics/get-history?{query}")["metrics"]
        history.sort(key=lambda m: m["step"])
        assert [m["value"] for m in history] == pytest.approx(RUNS[name]["val_f1"])
        assert [m["step"] for m in history] == [100, 200, 300]
    with urllib.request.urlopen(f"{base}/", timeout=10) as response:  # the UI itself
        assert response.status == 200 and b"<html" in response.read().lower()
