"""Two "nodes" on 127.0.0.1 under torchrun (one process each, gloo): the multi-node path run for
real, and a job that loses a rank ends instead of hanging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from conftest import free_port
from test_train import tiny_sweep_args

BIN = Path(sys.executable).parent


def _node(rank: int, port: int, root: Path, corpus: Path, *overrides: str) -> subprocess.Popen:
    """``torchrun --nnodes=2 --node_rank=RANK ... --no-python nerlab-train trainer=ddp ...``,
    exactly as docs/distributed.md shows it, in a process group of its own."""
    command = [
        str(BIN / "torchrun"),
        "--nnodes=2",
        f"--node_rank={rank}",
        "--nproc_per_node=1",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        "--no-python",
        str(BIN / "nerlab-train"),
        "trainer=ddp",
        "trainer.num_nodes=2",
        "trainer.devices=1",
        "trainer.accelerator=cpu",
        *tiny_sweep_args(root, corpus),
        "logger.mlflow.log_model=false",
        *overrides,
    ]
    log = root / f"node{rank}"
    return subprocess.Popen(
        command,
        cwd=root,
        env={**os.environ, "NERLAB_ROOT": str(root), "OMP_NUM_THREADS": "1"},
        stdout=log.with_suffix(".out").open("w"),
        stderr=log.with_suffix(".err").open("w"),  # files, not pipes: nothing blocks on them
        text=True,
        start_new_session=True,
    )


def _output(root: Path, rank: int) -> tuple[str, str]:
    return tuple((root / f"node{rank}.{kind}").read_text() for kind in ("out", "err"))


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (torchrun starts its workers in sessions of their own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _stop(proc: subprocess.Popen) -> None:
    for pid in _children(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_two_nodes_train_one_model_that_scores_what_one_process_scores(tmp_path, tiny_corpus):
    port = free_port()
    nodes = [_node(r, port, tmp_path, tiny_corpus, "trainer.max_epochs=2") for r in (0, 1)]
    try:
        for node in nodes:
            node.wait(timeout=240)
    finally:
        for node in nodes:
            _stop(node)
    outputs = [_output(tmp_path, rank) for rank in (0, 1)]
    for node, (_, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err[-3000:]
    summary = json.loads(outputs[0][0].strip().splitlines()[-1])
    assert "run_id" not in outputs[1][0]  # only rank 0 prints the summary
    assert summary["epochs"] == 2

    # only rank 0 wrote MLflow and the model directory
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert [r.info.run_id for r in runs] == [summary["run_id"]]
    assert runs[0].info.status == "FINISHED"
    assert len(list(tmp_path.glob("outputs/train/runs/*/model/model_info.json"))) == 1

    # the distributed test score is what one process scores with the saved model
    evaluate = subprocess.run(
        [
            str(BIN / "nerlab-evaluate"),
            f"model_dir={summary['model_dir']}",
            f"test_file={tiny_corpus / 'test.txt'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert evaluate.returncode == 0, evaluate.stderr
    scores = json.loads(evaluate.stdout.strip().splitlines()[-1])
    assert scores["f1"] == summary["test_f1"]
    assert scores["precision"] == summary["test_precision"]


@pytest.mark.slow  # make test keeps the two-node training
def test_a_job_that_loses_a_rank_exits_non_zero_in_bounded_time(tmp_path, tiny_corpus):
    port = free_port()
    overrides = (
        "trainer.max_epochs=1000",
        "~callbacks.early_stopping",
        "trainer.strategy.timeout.seconds=30",
    )
    nodes = [_node(r, port, tmp_path, tiny_corpus, *overrides) for r in (0, 1)]
    try:
        deadline = time.time() + 180
        while not list(tmp_path.glob("outputs/train/runs/*/checkpoints/last.ckpt")):
            assert all(n.poll() is None for n in nodes), _output(tmp_path, 0)[1][-3000:]
            assert time.time() < deadline, "training did not reach its first checkpoint"
            time.sleep(0.5)
        for pid in _children(nodes[1].pid):  # node 1's rank dies mid-training
            os.kill(pid, signal.SIGKILL)
        killed = time.time()
        nodes[0].wait(timeout=120)
        assert nodes[0].returncode != 0
        assert time.time() - killed < 90
        assert (
            "Connection closed by peer" in _output(tmp_path, 0)[1]
            or "timeout" in (_output(tmp_path, 0)[1])
        )
    finally:
        for node in nodes:
            _stop(node)
