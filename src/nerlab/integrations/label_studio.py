"""A Label Studio ML backend for a nerlab model (the protocol of Label Studio's ML backends).

* ``GET /health`` (and ``/``): ``{"status": "UP", "model_version", "model_dir"}``;
* ``POST /setup`` (``{"project", "schema"}``): reads the labelling config and answers
  ``{"model_version"}``;
* ``POST /predict`` (``{"tasks": [...], "label_config"?}``): one prediction per task,
  ``{"result": [labels spans, each with its probability as "score"], "score": P(best),
  "model_version"}``, in ``{"results": [...], "model_version"}``;
* ``POST /webhook`` (``{"action": "ANNOTATION_CREATED" | "ANNOTATION_UPDATED" |
  "ANNOTATION_DELETED" | "START_TRAINING", "task", "annotation"}``): keeps the annotations
  (``annotations.jsonl`` in the work folder, one line per task), and after every
  ``train_every`` new or changed annotations (and on ``START_TRAINING``) continues training
  the served model on them (``nerlab-train init_from=...``, in the background); the new model is
  served when it is ready and the model version moves on;
* ``GET /is_training``, ``GET /metrics``.

The labelling config names the text (``<Text name="text" value="$text"/>``) and the labels
(``<Labels name="label" toName="text">``); both default to those names.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

# at module level: FastAPI reads the endpoints' annotations (strings here) in this namespace
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from nerlab.errors import NerlabError
from nerlab.files import write_atomic
from nerlab.inference import Tagger

log = logging.getLogger(__name__)

EDIT_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


def parse_config(label_config: str | None) -> dict[str, str]:
    """``from_name``, ``to_name`` and the task's data key (``value="$text"``) of a labelling
    config; Label Studio's defaults when there is none."""
    names = {"from_name": "label", "to_name": "text", "data_key": "text"}
    if not label_config:
        return names
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError as err:
        raise NerlabError(f"label_config: not XML ({err})") from None
    text = next((e for e in root.iter() if e.tag in ("Text", "HyperText")), None)
    labels = next((e for e in root.iter() if e.tag == "Labels"), None)
    if text is not None:
        names["to_name"] = text.get("name", names["to_name"])
        names["data_key"] = text.get("value", "$text").lstrip("$")
    if labels is not None:
        names["from_name"] = labels.get("name", names["from_name"])
        names["to_name"] = labels.get("toName", names["to_name"])
    return names


class Backend:
    """The state behind the server: the served tagger, its version, the kept annotations."""

    def __init__(
        self,
        model_dir: str,
        work_dir: str | Path,
        *,
        train_every: int = 0,
        train_overrides: tuple[str, ...] = (),
        tracking_uri: str | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.tagger = Tagger.load(model_dir, batch_size=64, tracking_uri=tracking_uri)
        self.version = 0
        self.work = Path(work_dir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.names = parse_config(None)
        self.train_every = train_every
        self.train_overrides = train_overrides
        self.annotations: dict[str, dict] = {}
        self.changed = 0
        self.training: threading.Thread | None = None
        self.last_training: dict[str, Any] = {}
        self.lock = threading.Lock()
        store = self.work / "annotations.jsonl"
        if store.exists():
            for line in store.read_text().splitlines():
                record = json.loads(line)
                self.annotations[str(record["task"])] = record

    @property
    def model_version(self) -> str:
        return f"nerlab-{self.version}"

    # ------------------------------------------------------------------ predictions
    def predict(self, tasks: list[dict], label_config: str | None = None) -> list[dict]:
        from nerlab.analysis.selection import label_studio_result, score_units, units_from_texts

        names = parse_config(label_config) if label_config else self.names
        texts = []
        for i, task in enumerate(tasks):
            text = (task.get("data") or {}).get(names["data_key"])
            if not isinstance(text, str):
                raise NerlabError(
                    f"task {task.get('id', i)}: expected a string data.{names['data_key']}, "
                    f"found {type(text).__name__}"
                )
            texts.append(text)
        units = units_from_texts(texts, split_sentences=self.tagger.uses_documents)
        found, log_paths = score_units(self.tagger, units, self.tagger.uses_documents)
        return [
            {
                "result": label_studio_result(entities, names["from_name"], names["to_name"]),
                "score": float(np.exp(best)),
                "model_version": self.model_version,
            }
            for entities, (best, _) in zip(found, log_paths.tolist(), strict=True)
        ]

    # ------------------------------------------------------------------ annotations
    def webhook(self, payload: dict) -> dict:
        action = payload.get("action")
        if action in EDIT_ACTIONS or action == "ANNOTATION_DELETED":
            task = payload.get("task") or {}
            key = str(task.get("id"))
            with self.lock:
                if action == "ANNOTATION_DELETED":
                    self.annotations.pop(key, None)
                else:
                    self.annotations[key] = self._record(task, payload.get("annotation") or {})
                    self.changed += 1
                self._save()
            if self.train_every and self.changed >= self.train_every:
                return self.start_training()
            return {"status": "kept", "annotations": len(self.annotations)}
        if action == "START_TRAINING":
            return self.start_training()
        return {"status": f"ignored action {action}"}

    def _record(self, task: dict, annotation: dict) -> dict:
        text = (task.get("data") or {}).get(self.names["data_key"])
        if not isinstance(text, str):
            raise NerlabError(f"task {task.get('id')}: no text under data.{self.names['data_key']}")
        spans = [
            [r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]]
            for r in annotation.get("result") or []
            if r.get("type") == "labels" and r.get("value", {}).get("labels")
        ]
        return {"task": task.get("id"), "text": text, "label": spans}

    def _save(self) -> None:
        lines = [json.dumps(r, ensure_ascii=False) for r in self.annotations.values()]
        write_atomic(self.work / "annotations.jsonl", "\n".join(lines) + ("\n" if lines else ""))

    # ------------------------------------------------------------------ training
    def start_training(self) -> dict:
        with self.lock:
            if self.training is not None and self.training.is_alive():
                return {"status": "training already"}
            if not self.annotations:
                return {"status": "no annotations to train on"}
            self.changed = 0
            self.training = threading.Thread(target=self._train, daemon=True)
            self.training.start()
        return {"status": "training started", "annotations": len(self.annotations)}

    def _train(self) -> None:
        from nerlab.data.formats import convert

        run = self.work / f"train-{self.version + 1}"
        data = run / "data"
        data.mkdir(parents=True, exist_ok=True)
        convert(
            self.work / "annotations.jsonl",
            data / "train.txt",
            target_format="conll",
            tokenize="words",
        )
        command = [
            str(Path(sys.executable).parent / "nerlab-train"),
            f"init_from={self.model_dir}",
            "data=bio",
            f"data.dir={data}",
            "data.val_file=null",
            "data.test_file=null",
            "test=false",
            f"paths.root_dir={run}",
            "trainer.enable_progress_bar=false",
            *self.train_overrides,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            self.last_training = {"status": "failed", "error": result.stderr.strip()[-500:]}
            log.error("continued training failed: %s", self.last_training["error"])
            return
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        tagger = Tagger.load(summary["model_dir"], batch_size=64)
        with self.lock:
            self.model_dir, self.tagger = summary["model_dir"], tagger
            self.version += 1
        self.last_training = {"status": "done", "model_dir": summary["model_dir"]}
        log.info("serving %s (%s)", self.model_dir, self.model_version)


def build_app(backend: Backend):
    app = FastAPI(title="nerlab Label Studio ML backend")

    async def body(request: Request) -> dict:
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise NerlabError("expected a JSON object")
        return data

    @app.exception_handler(NerlabError)
    async def bad_request(request, err: NerlabError):
        return JSONResponse({"error": str(err)}, status_code=400)

    @app.get("/")
    @app.get("/health")
    async def health():
        return {
            "status": "UP",
            "model_version": backend.model_version,
            "model_dir": backend.model_dir,
        }

    @app.post("/setup")
    async def setup(request: Request):
        data = await body(request)
        if data.get("schema"):
            backend.names = parse_config(data["schema"])
        return {"model_version": backend.model_version}

    @app.post("/predict")
    async def predict(request: Request):
        data = await body(request)
        tasks = data.get("tasks")
        if not isinstance(tasks, list):
            raise NerlabError('expected {"tasks": [...]}')
        results = backend.predict(tasks, data.get("label_config"))
        return {"results": results, "model_version": backend.model_version}

    @app.post("/webhook")
    async def webhook(request: Request):
        return JSONResponse(backend.webhook(await body(request)), status_code=201)

    @app.get("/is_training")
    async def is_training():
        alive = backend.training is not None and backend.training.is_alive()
        return {"is_training": alive, "last": backend.last_training}

    @app.get("/metrics")
    async def metrics():
        return {"annotations": len(backend.annotations), "model_version": backend.model_version}

    return app
