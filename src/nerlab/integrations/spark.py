"""Tagging a corpus on Spark: the run's MLflow model as ``mlflow.pyfunc.spark_udf``.

``tag_on_spark`` reads a text file (one text a line, as ``make predict`` reads it) into a
DataFrame, tags each partition's texts through the pyfunc UDF (a pandas UDF: the model is loaded
once per Python worker and tags a batch of texts per call) and writes one record per line,
``{"line", "text", "entities": [{"text", "label", "start", "end", "confidence"}]}``, as JSON
lines or Parquet (a folder of part files, Spark's way). ``line`` numbers the input lines from 0,
so ordering by it gives ``make predict``'s records in its order.

The session it makes binds 127.0.0.1 and has no UI; on a cluster, ``master=`` names the cluster
(``spark://HOST:7077``, ``yarn``) and the model URI must be readable from the executors (a
tracking server, not a local SQLite file).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from nerlab.errors import NerlabError
from nerlab.inference.model_uri import default_tracking_uri

#: the Spark type of the pyfunc model's output: the entities of each text
ENTITY_FIELDS = (
    ("text", "string"),
    ("label", "string"),
    ("start", "long"),
    ("end", "long"),
    ("confidence", "double"),
)


def result_type():
    from pyspark.sql.types import (
        ArrayType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    types = {"string": StringType(), "long": LongType(), "double": DoubleType()}
    return ArrayType(StructType([StructField(n, types[t]) for n, t in ENTITY_FIELDS]))


def local_session(master: str = "local[2]", app_name: str = "nerlab"):
    """A Spark session for ``master``; local ones bind 127.0.0.1 only, without a UI."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise NerlabError(
            "Spark tagging needs pyspark: pip install 'nerlab[spark]' (make spark-deps)"
        ) from None
    builder = SparkSession.builder.master(master).appName(app_name)
    if master.startswith("local"):
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
        )
    return builder.getOrCreate()


def model_udf(spark, model_uri: str, tracking_uri: str | None = None):
    """``mlflow.pyfunc.spark_udf`` of a nerlab MLflow model (``runs:/ID/model``,
    ``models:/NAME@ALIAS``), in this Python environment (``env_manager="local"``)."""
    import mlflow

    store = default_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    return mlflow.pyfunc.spark_udf(
        spark, model_uri=model_uri, result_type=result_type(), env_manager="local"
    )


def tag_on_spark(
    model_uri: str,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    output_format: str = "json",
    master: str = "local[2]",
    partitions: int | None = None,
    tracking_uri: str | None = None,
    spark=None,
) -> dict:
    """Tag every line of ``input_path`` on Spark into ``output_path`` (a folder); returns the
    figures of the run (texts, seconds, texts per second)."""
    if output_format not in ("json", "parquet"):
        raise NerlabError(f"format must be json or parquet, found {output_format!r}")
    remote = "://" in str(input_path)  # hdfs://, s3a://, ...: the cluster reads it
    source = Path(input_path)
    if not remote and not source.is_file():
        raise NerlabError(f"{source}: no such file")
    location = str(input_path) if remote else str(source.resolve())
    from pyspark.sql import functions as F

    own = spark is None
    spark = spark or local_session(master)
    try:
        started = time.perf_counter()
        udf = model_udf(spark, model_uri, tracking_uri)
        # each line with its number in the file (zipWithIndex: distributed, in file order)
        rdd = spark.sparkContext.textFile(location, minPartitions=partitions)
        numbered = rdd.zipWithIndex().map(lambda pair: (pair[1], pair[0]))
        frame = spark.createDataFrame(numbered, "line long, text string")
        # spark_udf turns the texts' entity lists into one rectangular column, padding the
        # shorter lists with nulls: drop them
        entities = F.filter(udf(F.col("text")), lambda entity: entity.isNotNull())
        tagged = frame.withColumn("entities", entities)
        writer = tagged.write.mode("overwrite")
        if output_format == "json":
            writer.json(str(output_path))
        else:
            writer.parquet(str(output_path))
        seconds = time.perf_counter() - started
        count = spark.read.format(output_format).load(str(output_path)).count()
    finally:
        if own:
            spark.stop()
    return {
        "input": str(input_path),
        "output": str(output_path),
        "format": output_format,
        "master": master,
        "texts": count,
        "seconds": seconds,
        "texts_per_s": count / seconds if seconds else None,
    }


def read_output(path: str | os.PathLike, output_format: str = "json") -> list[dict]:
    """The records of a :func:`tag_on_spark` folder in input order, as ``make predict``
    writes them (``{"text", "entities"}``), read without Spark."""
    import json

    folder = Path(path)
    records = []
    if output_format == "json":
        for part in sorted(folder.glob("part-*")):
            records += [json.loads(line) for line in part.read_text().splitlines() if line]
    else:
        import pandas as pd

        frame = pd.read_parquet(folder)
        for row in frame.to_dict("records"):
            row["entities"] = [dict(e) for e in row["entities"]]
            records.append(row)
    records.sort(key=lambda r: r["line"])
    return [{"text": r["text"], "entities": list(r.get("entities") or [])} for r in records]
