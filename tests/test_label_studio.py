"""The Label Studio ML backend over HTTP on 127.0.0.1: health, setup, predictions with scores,
annotations kept from webhooks and continued training on them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, wait_until_up

from nerlab import Tagger

BIN = Path(sys.executable).parent
CONFIG = """<View>
  <Labels name="ner" toName="txt">
    <Label value="PER"/><Label value="LOC"/><Label value="ORG"/>
  </Labels>
  <Text name="txt" value="$sentence"/>
</View>"""


def post(url: str, payload) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture
def server(trained, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [
            str(BIN / "nerlab-label-studio-backend"),
            f"model_dir={trained['model_dir']}",
            f"port={port}",
            f"work_dir={tmp_path / 'work'}",
            "epochs=2",
            "lifetime=240",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", process)
        yield url, tmp_path / "work"
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_the_backend_predicts_keeps_annotations_and_trains_on_them(trained, server):
    url, work = server
    assert get(f"{url}/health")["status"] == "UP"
    status, setup = post(f"{url}/setup", {"project": "1.1", "schema": CONFIG})
    assert status == 200 and setup["model_version"] == "nerlab-0"
    texts = ["Mary visited Paris today .", "John works for Acme Corp in London ."]
    tasks = [{"id": i + 1, "data": {"sentence": t}} for i, t in enumerate(texts)]
    status, answer = post(f"{url}/predict", {"tasks": tasks})
    assert status == 200 and answer["model_version"] == "nerlab-0"
    tagger = Tagger.load(trained["model_dir"])
    for prediction, expected in zip(answer["results"], tagger.predict(texts), strict=True):
        assert 0 < prediction["score"] <= 1
        spans = [
            (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0])
            for r in prediction["result"]
        ]
        assert spans == [(e["start"], e["end"], e["label"]) for e in expected]
        assert {(r["from_name"], r["to_name"], r["type"]) for r in prediction["result"]} <= {
            ("ner", "txt", "labels")
        }
        assert [r["score"] for r in prediction["result"]] == pytest.approx(
            [e["confidence"] for e in expected]
        )
    # a task without the configured text: one line, 400, and the server goes on
    status, error = post(f"{url}/predict", {"tasks": [{"id": 9, "data": {"text": "x"}}]})
    assert status == 400 and "task 9: expected a string data.sentence" in error["error"]
    # annotations arrive as webhooks, are kept, and START_TRAINING continues the model on them
    for task in tasks:
        annotation = {
            "result": [
                {"from_name": "ner", "to_name": "txt", "type": "labels",
                 "value": {"start": 0, "end": 4, "labels": ["PER"]}}
            ]
        }  # fmt: skip
        status, kept = post(
            f"{url}/webhook",
            {"action": "ANNOTATION_CREATED", "task": task, "annotation": annotation},
        )
        assert status == 201 and kept["status"] == "kept"
    records = [json.loads(line) for line in (work / "annotations.jsonl").read_text().splitlines()]
    assert [r["label"] for r in records] == [[[0, 4, "PER"]], [[0, 4, "PER"]]]
    status, started = post(f"{url}/webhook", {"action": "START_TRAINING"})
    assert status == 201 and started["status"] == "training started"
    deadline = time.time() + 180
    while get(f"{url}/is_training")["is_training"] and time.time() < deadline:
        time.sleep(1)
    last = get(f"{url}/is_training")["last"]
    assert last["status"] == "done", last
    assert get(f"{url}/health")["model_version"] == "nerlab-1"
    info = json.loads((Path(last["model_dir"]) / "model_info.json").read_text())
    assert info["continued_from"] == str(trained["model_dir"])
    status, answer = post(f"{url}/predict", {"tasks": tasks[:1]})
    assert status == 200 and answer["results"][0]["model_version"] == "nerlab-1"


def test_convert_reads_label_studios_json_exports(tmp_path):
    """Label Studio exports a JSON array: JSON (tasks with annotations; the last one not
    cancelled counts) and JSON_MIN (text and spans)."""
    from nerlab.data.formats import convert, read_examples

    export = [
        {
            "id": 1,
            "data": {"text": "Mary visited Paris ."},
            "annotations": [
                {"was_cancelled": False, "result": [
                    {"type": "labels", "value": {"start": 0, "end": 4, "labels": ["LOC"]}}]},
                {"was_cancelled": False, "result": [
                    {"type": "labels", "value": {"start": 0, "end": 4, "labels": ["PER"]}},
                    {"type": "labels", "value": {"start": 13, "end": 18, "labels": ["LOC"]}}]},
                {"was_cancelled": True, "result": []},
            ],
        },
        {"id": 2, "text": "John works .", "label": [{"start": 0, "end": 4, "labels": ["PER"]}]},
    ]  # fmt: skip
    source = tmp_path / "export.json"
    source.write_text(json.dumps(export))
    examples = list(read_examples(source))
    assert [e.tags for e in examples] == [["B-PER", "O", "B-LOC", "O"], ["B-PER", "O", "O"]]
    summary = convert(source, tmp_path / "train.conll")
    assert summary["records"] == 2 and summary["entities"] == 3
    source.write_text('[{"id": 3, "data": {"txt": "no text key"}}]')
    from nerlab.errors import DataFormatError

    with pytest.raises(DataFormatError, match=r"export.json:1: expected a string \"text\""):
        list(read_examples(source))
