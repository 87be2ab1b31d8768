"""nerlab inside other tools, each beside nerlab's own path on the same texts:

* :func:`run_spacy`: the spaCy pipeline component (``spacy.blank("en")`` + ``nerlab``,
  ``nlp.pipe(texts, batch_size=256)``: spaCy's tokenizer, the model, entities aligned onto
  spaCy's tokens) against ``Tagger.predict`` on the same texts 256 at a time; best of
  ``repeats`` passes
  after a warm-up pass each. ``overhead`` = component seconds / predict seconds - 1.
* :func:`run_spark`: ``make spark-predict`` (``nerlab-spark-predict``, ``local[2]``, the model as
  an MLflow pyfunc model through ``spark_udf``) against ``make predict`` (``nerlab-predict``) on
  the same file of texts, each a whole command timed from start to exit (Spark's session start
  and the model's loading included on both sides); ``spark_vs_predict`` = Spark's texts/s /
  predict's. Needs pyspark and Java; says so when missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH = 256


def texts_of(token_lists: list[list[str]]) -> list[str]:
    return [" ".join(tokens) for tokens in token_lists if tokens]


def run_spacy(model_dir: Path, texts: list[str], repeats: int = 3) -> dict:
    import spacy

    from nerlab import Tagger

    tagger = Tagger.load(model_dir, batch_size=BATCH)
    nlp = spacy.blank("en")
    nlp.add_pipe("nerlab", config={"model": str(model_dir), "batch_size": BATCH})

    def predict() -> None:  # batch 256 on both sides: the component hands over 256 texts a call
        for start in range(0, len(texts), BATCH):
            tagger.predict(texts[start : start + BATCH])

    def component() -> None:
        for _ in nlp.pipe(texts, batch_size=BATCH):
            pass

    times = {}
    for name, fn in (("predict", predict), ("component", component)):
        fn()  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        times[name] = best
    tokens = sum(len(t.split()) for t in texts)
    return {
        "texts": len(texts),
        "tokens": tokens,
        "predict_seconds": times["predict"],
        "component_seconds": times["component"],
        "predict_texts_per_s": len(texts) / times["predict"],
        "component_texts_per_s": len(texts) / times["component"],
        "overhead": times["component"] / times["predict"] - 1,
        "batch_size": BATCH,
    }


def pyfunc_model(model_dir: Path, target: Path) -> Path:
    """``model_dir`` as an MLflow pyfunc model at ``target`` (what a run logs as ``model``)."""
    import mlflow

    import nerlab

    package = Path(nerlab.__file__).parent
    mlflow.pyfunc.save_model(
        str(target),
        python_model=str(package / "inference" / "pyfunc.py"),
        artifacts={"model_dir": str(model_dir)},
        code_paths=[str(package)],
    )
    return target


def _timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()[-300:]}")
    return seconds, result.stdout


def run_spark(model_dir: Path, texts: list[str], copies: int = 10) -> dict:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return {"skipped": "pyspark is not installed (make spark-deps)"}
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return {"skipped": "Spark needs Java"}
    from nerlab.integrations.spark import read_output

    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="nerlab-bench-spark-") as tmp:
        folder = Path(tmp)
        source = folder / "texts.txt"
        lines = texts * copies
        source.write_text("\n".join(lines) + "\n")
        model = pyfunc_model(model_dir, folder / "mlflow-model")
        predicted = folder / "predict.jsonl"
        predict_s, _ = _timed(
            [
                str(bin_dir / "nerlab-predict"),
                f"model_dir={model_dir}",
                f"input={source}",
                f"output={predicted}",
                f"batch_size={BATCH}",
            ]
        )
        spark_s, out = _timed(
            [
                str(bin_dir / "nerlab-spark-predict"),
                f"model={model}",
                f"input={source}",
                f"output={folder / 'spark'}",
                "master=local[2]",
            ]
        )
        reference = [json.loads(line) for line in predicted.read_text().splitlines()]
        tagged = read_output(folder / "spark")
        same = len(tagged) == len(reference) and all(
            a["text"] == b["text"]
            and [(e["start"], e["end"], e["label"]) for e in a["entities"]]
            == [(e["start"], e["end"], e["label"]) for e in b["entities"]]
            for a, b in zip(tagged, reference, strict=False)
        )
    return {
        "texts": len(lines),
        "predict_seconds": predict_s,
        "spark_seconds": spark_s,
        "predict_texts_per_s": len(lines) / predict_s,
        "spark_texts_per_s": len(lines) / spark_s,
        "spark_vs_predict": predict_s / spark_s,
        "same_entities": same,
        "spark_summary": json.loads(out.strip().splitlines()[-1]),
        "master": "local[2]",
    }
