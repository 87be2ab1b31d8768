"""A corpus tagged on Spark (local[2], 127.0.0.1 only) through the run's MLflow model as
``mlflow.pyfunc.spark_udf``: the records equal ``make predict``'s. Needs pyspark (the ``spark``
extra, installed by ``make test-all``) and Java."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_sentences

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java")
    from nerlab.integrations.spark import local_session

    session = local_session("local[2]")
    yield session
    session.stop()


def test_spark_tags_a_file_as_make_predict_does(trained, spark, tmp_path, monkeypatch):
    from nerlab.integrations.spark import read_output, tag_on_spark

    uri = f"sqlite:///{trained['root']}/mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    texts = [" ".join(tokens) for tokens, _ in make_sentences(120, seed=5)]
    texts[7] = ""  # an empty line is a record too
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n")
    reference = tmp_path / "predict.jsonl"
    result = subprocess.run(
        [
            str(BIN / "nerlab-predict"),
            f"model_dir={trained['model_dir']}",
            f"input={source}",
            f"output={reference}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    expected = [json.loads(line) for line in reference.read_text().splitlines()]
    for fmt in ("json", "parquet"):
        out = tmp_path / f"spark-{fmt}"
        summary = tag_on_spark(
            f"runs:/{trained['run_id']}/model",
            source,
            out,
            output_format=fmt,
            partitions=3,
            tracking_uri=uri,
            spark=spark,
        )
        assert summary["texts"] == len(texts)
        got = read_output(out, fmt)
        assert [r["text"] for r in got] == texts
        for a, b in zip(got, expected, strict=True):
            assert [e["confidence"] for e in a["entities"]] == pytest.approx(
                [e["confidence"] for e in b["entities"]],
                abs=1e-6,  # other batches: float32 sums
            )
            drop = [{k: v for k, v in e.items() if k != "confidence"} for e in a["entities"]]
            assert drop == [
                {k: v for k, v in e.items() if k != "confidence"} for e in b["entities"]
            ]
            assert a["text"] == b["text"]
    # the driver binds the loopback only
    assert spark.sparkContext.getConf().get("spark.driver.host") == "127.0.0.1"
