"""Serving and export: make export (ONNX, int8), the torch-free ONNX tagger, make serve."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, make_sentences, wait_until_up

from nerlab import Tagger

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """A copy of the trained fixture model, exported to ONNX fp32 and int8 by the command's
    ``main`` (in this process: a subprocess would add seconds of imports)."""
    import contextlib
    import io

    from nerlab.cli.export import main

    model_dir = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(trained["model_dir"], model_dir)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([f"model_dir={model_dir}", "quantize=int8"]) == 0
    return model_dir, json.loads(out.getvalue().strip().splitlines()[-1])


def test_export_writes_checked_onnx_int8_and_crf_scores(exported):
    model_dir, summary = exported
    assert summary["onnx"]["max_difference"] < 1e-4
    assert summary["int8"]["bytes"] < summary["onnx"]["bytes"]
    names = sorted(p.name for p in model_dir.iterdir())
    assert names == [
        "MODEL_CARD.md",
        "crf.safetensors",
        "model.int8.onnx",
        "model.onnx",
        "model.safetensors",
        "model_info.json",
    ]
    import onnx

    graph = onnx.load(str(model_dir / "model.onnx")).graph
    assert [i.name for i in graph.input][:2] == ["word_ids", "form_index"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert all(d.dim_param for d in dims)  # batch and length are dynamic
    # and so are the emissions: the exporter declared the traced example's length, and
    # onnxruntime warned "Expected shape from model of {-1,L,K}" at every other length
    out = graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in out][:2] == ["batch", "length"]
    assert len(graph.value_info) == 0


def test_a_second_export_in_one_process_keeps_the_length_dynamic(exported, tmp_path):
    """torch 2.13 kept the LSTM's Python-loop kernel cached after an export, and every later
    export in the process fixed the sentence length to the example's. The fixture exported in
    this process; this is (at least) the second export."""
    import onnx

    from nerlab.inference.export import export_onnx

    model_dir, _ = exported
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    export_onnx(copy)
    graph = onnx.load(str(copy / "model.onnx")).graph
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input]
    assert dims[0] == ["batch", "length"], dims
    long = [["Mary"] * 40]
    assert Tagger.load(copy, backend="onnx").tag(long) == Tagger.load(copy).tag(long)


def test_onnx_tagger_gives_the_torch_taggers_tags_and_probabilities(exported):
    model_dir, _ = exported
    sentences = [tokens for tokens, _ in make_sentences(60, seed=11)]
    sentences.append(["Mary"] * 300)  # longer than anything at export time
    torch_tagger = Tagger.load(model_dir)
    onnx_tagger = Tagger.load(model_dir, backend="onnx")
    assert onnx_tagger.backend == "onnx" and onnx_tagger.has_crf
    assert onnx_tagger.tag(sentences) == torch_tagger.tag(sentences)
    texts = ["Mary visited Paris today .", "John works for Acme Corp in London ."]
    for a, b in zip(onnx_tagger.predict(texts), torch_tagger.predict(texts), strict=True):
        assert [e.pop("confidence") for e in a] == pytest.approx(
            [e.pop("confidence") for e in b], abs=1e-5
        )
        assert a == b
    int8 = Tagger.load(model_dir, backend="onnx", quantize="int8")
    tags, reference = int8.tag(sentences), torch_tagger.tag(sentences)
    same = sum(
        x == y for s, r in zip(tags, reference, strict=True) for x, y in zip(s, r, strict=True)
    )
    assert same / sum(map(len, reference)) > 0.95
    with pytest.raises(Exception, match="k-best paths need the torch backend"):
        onnx_tagger.tag(sentences[:1], k=2)


def test_the_onnx_tagger_never_imports_torch(exported):
    model_dir, _ = exported
    code = (
        "import sys\n"
        "from nerlab import Tagger\n"
        f"t = Tagger.load({str(model_dir)!r}, backend='onnx', quantize='int8')\n"
        "print(t.predict('Mary visited Paris today .'))\n"
        "heavy = [m for m in ('torch', 'lightning', 'mlflow', 'numba') if m in sys.modules]\n"
        "assert heavy == [], heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout


def test_missing_export_is_a_one_line_error(trained, tmp_path):
    result = subprocess.run(
        [
            str(BIN / "nerlab-evaluate"),
            f"model_dir={trained['model_dir']}",
            f"test_file={trained['corpus'] / 'test.txt'}",
            "backend=onnx",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"nerlab-evaluate: error: {trained['model_dir']}/model.onnx: missing; export the model "
        f"first: make export model_dir={trained['model_dir']}"
    ]


def _post(url: str, body: bytes, content_type: str = "application/json"):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_server_batches_concurrent_requests_and_refuses_bad_ones(exported):
    model_dir, _ = exported
    port = free_port()
    # as a newcomer starts it: make, from the repository, with nothing of .venv on PATH
    server = subprocess.Popen(
        [
            "make",
            "--no-print-directory",
            "serve",
            f"model_dir={model_dir}",
            "backend=onnx",
            f"port={port}",
            "max_batch_size=8",
            "batch_timeout=0.01",
            "lifetime=300",
        ],
        cwd=Path(__file__).resolve().parents[1],
        env={"PATH": "/usr/bin:/bin", "HOME": str(model_dir.parent)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/invocations"
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", server)
        texts = [" ".join(tokens) for tokens, _ in make_sentences(48, seed=4)]
        expected = Tagger.load(model_dir, backend="onnx").predict(texts)
        answers: dict[int, tuple] = {}

        def client(i: int) -> None:
            for j in range(i, len(texts), 16):
                answers[j] = _post(url, json.dumps({"inputs": [texts[j]]}).encode())

        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert sorted(answers) == list(range(len(texts)))
        for j, (status, body) in answers.items():
            assert status == 200
            got = body["predictions"][0]
            want = expected[j]
            assert [e.pop("confidence") for e in got] == pytest.approx(
                [e.pop("confidence") for e in want], abs=1e-6
            )
            assert got == want
        big = json.dumps({"inputs": ["Paris " * 200_000]}).encode()
        bad = [
            (b'{"inputs": [12345]}', 400, "expected input 0 to be a string, found 12345"),
            (b'{"inputs": [null]}', 400, "expected input 0 to be a string, found null"),
            (
                b'{"inputs": "Paris"}',
                400,
                'expected "inputs" to be a list of strings, found "Paris"',
            ),
            (b"not json", 400, "expected a JSON body, found invalid JSON"),
            (b'{"inputs": ["a"], "x": 1}', 400, 'expected only the key "inputs", found ["x"]'),
            (big, 413, f"the body has {len(big)} bytes; at most 1000000 are accepted"),
        ]
        for body, status, message in bad:
            assert _post(url, body) == (status, {"error": message})
        assert _post(url, b'{"inputs": ["Paris"]}', "text/plain")[0] == 415
        # a long text within the limit is answered, and the server goes on serving
        status, body = _post(url, json.dumps({"inputs": ["Mary in Paris . " * 5000]}).encode())
        assert status == 200 and len(body["predictions"][0]) > 1000
        status, body = _post(url, json.dumps({"inputs": [texts[0], ""]}).encode())
        assert status == 200 and len(body["predictions"]) == 2 and body["predictions"][1] == []
        status, body = _post(url, json.dumps({"inputs": []}).encode())
        assert (status, body) == (200, {"predictions": []})
    finally:
        # SIGTERM to the server alone (make's child): it must stop its own API server and
        # workers, and make then ends
        for pid, line in _group_members(server.pid, with_pids=True):
            if "bin/nerlab-serve" in line and _parent(pid) == server.pid:
                os.kill(pid, signal.SIGTERM)
        server.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _group_members(server.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        leftover = _group_members(server.pid)
        os.killpg(server.pid, signal.SIGKILL) if leftover else None
    assert leftover == []  # no API server or worker outlived the server


def _group_members(group: int, with_pids: bool = False) -> list:
    """Command lines (with ``with_pids``: ``(pid, line)``) of the running processes of process
    group ``group``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] != "Z":
                line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append((int(proc.name), line) if with_pids else line)
        except (OSError, ValueError, IndexError):
            continue
    return found


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
