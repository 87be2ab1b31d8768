"""nerlab's ML backend against a real Label Studio server (from PyPI, in its own venv made by
`make label-studio-deps`), both on 127.0.0.1: a project with an NER labelling config, tasks
imported, nerlab's pre-annotations fetched through Label Studio's API, annotations submitted,
the project exported and the export trained on through `make convert`."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, free_port, wait_until_up

BIN = Path(sys.executable).parent
LABEL_STUDIO = ROOT / ".venv-ls" / "bin" / "label-studio"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
CONFIG = """<View>
  <Labels name="label" toName="text">
    <Label value="PER"/><Label value="LOC"/><Label value="ORG"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>"""

pytestmark = pytest.mark.slow


def api(base: str, method: str, path: str, payload=None):
    request = urllib.request.Request(
        f"{base}{path}",
        method=method,
        data=None if payload is None else json.dumps(payload).encode(),
        headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            body = response.read()
    except urllib.error.HTTPError as err:  # say what Label Studio answered
        raise AssertionError(f"{method} {path}: {err.code} {err.read()[:500]!r}") from None
    return json.loads(body) if body else None


@pytest.fixture
def label_studio(tmp_path):
    if not LABEL_STUDIO.exists():
        pytest.skip("Label Studio is not installed: make label-studio-deps")
    port = free_port()
    process = subprocess.Popen(
        [
            str(LABEL_STUDIO), "start", "--no-browser", "--internal-host", "127.0.0.1",
            "--port", str(port), "--data-dir", str(tmp_path / "ls-data"),
            "--username", "tester@example.com", "--password", "nerlab-test-pass",
            "--user-token", TOKEN, "--enable-legacy-api-token",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "ML_BLOCK_LOCAL_IP": "false",  # the ML backend is on 127.0.0.1 too
            "SSRF_PROTECTION_ENABLED": "false",
        },
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/health", process, seconds=300)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def backend(trained, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "nerlab-label-studio-backend"), f"model_dir={trained['model_dir']}",
         f"port={port}", f"work_dir={tmp_path / 'work'}", "lifetime=600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_label_studio_gets_predictions_and_annotations_train_a_model(
    trained, label_studio, backend, tmp_path
):
    from nerlab import Tagger

    texts = ["Mary visited Paris today .", "John works for Acme Corp in London ."]
    project = api(
        label_studio, "POST", "/api/projects", {"title": "nerlab", "label_config": CONFIG}
    )
    pid = project["id"]
    api(label_studio, "POST", f"/api/projects/{pid}/import", [{"text": t} for t in texts])
    ml = api(label_studio, "POST", "/api/ml", {"project": pid, "url": backend, "title": "nerlab"})
    assert ml["id"]
    api(
        label_studio,
        "POST",
        f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
        {"selectedItems": {"all": True, "excluded": []}},
    )
    tasks = api(label_studio, "GET", f"/api/tasks?project={pid}&fields=all")
    tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
    expected = Tagger.load(trained["model_dir"]).predict(texts)
    by_text = {t["data"]["text"]: t for t in tasks}
    for text, entities in zip(texts, expected, strict=True):
        task = api(label_studio, "GET", f"/api/tasks/{by_text[text]['id']}")
        (prediction,) = task["predictions"]
        spans = [
            (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0])
            for r in prediction["result"]
        ]
        assert spans == [(e["start"], e["end"], e["label"]) for e in entities]
        assert prediction["model_version"] == "nerlab-0"
        # the annotator accepts the pre-annotation
        api(
            label_studio,
            "POST",
            f"/api/tasks/{task['id']}/annotations",
            {"result": prediction["result"], "ground_truth": False},
        )
    export = tmp_path / "export.json"
    data = api(label_studio, "GET", f"/api/projects/{pid}/export?exportType=JSON")
    export.write_text(json.dumps(data))
    converted = subprocess.run(
        [str(BIN / "nerlab-data"), "convert", f"input={export}", f"output={tmp_path / 'train.txt'}",
         "tokenize=words"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert converted.returncode == 0, converted.stderr
    assert json.loads(converted.stdout.splitlines()[-1])["entities"] == sum(map(len, expected))
    # train on the export, continuing the model
    folder = tmp_path / "data"
    folder.mkdir()
    (tmp_path / "train.txt").rename(folder / "train.txt")
    result = subprocess.run(
        [str(BIN / "nerlab-train"), f"init_from={trained['model_dir']}", "data=bio",
         f"data.dir={folder}", "data.val_file=train.txt", "data.test_file=null", "test=false",
         f"paths.root_dir={tmp_path}", "trainer.max_epochs=2", "trainer.enable_progress_bar=false"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert Path(json.loads(result.stdout.splitlines()[-1])["model_dir"]).is_dir()
