"""`make spark-predict` / `nerlab-spark-predict`: tag a file of texts on Spark.

    nerlab-spark-predict (run_id=ID | model=models:/NAME@ALIAS) input=FILE output=DIR
                         [format=json|parquet] [master=local[2]] [partitions=N]
                         [tracking_uri=URI]

The run's MLflow model runs as ``mlflow.pyfunc.spark_udf``; ``output`` is a folder of part
files, one record per input line: ``{"line", "text", "entities"}`` (``make predict``'s records
with the line number). The last stdout line is JSON: texts, seconds, texts per second.
"""

from __future__ import annotations

import json

from nerlab.cli.options import main_of
from nerlab.errors import NerlabError


def spark_predict(options: dict[str, str]) -> int:
    from nerlab.integrations.spark import tag_on_spark

    if "model" in options:
        model_uri = options["model"]
    elif "run_id" in options:
        model_uri = f"runs:/{options['run_id']}/model"
    else:
        raise NerlabError("give run_id=ID or model=models:/NAME@ALIAS")
    for key in ("input", "output"):
        if key not in options:
            raise NerlabError(f"give {key}=...")
    result = tag_on_spark(
        model_uri,
        options["input"],
        options["output"],
        output_format=options.get("format", "json"),
        master=options.get("master", "local[2]"),
        partitions=int(options["partitions"]) if "partitions" in options else None,
        tracking_uri=options.get("tracking_uri"),
    )
    print(json.dumps(result))
    return 0


main = main_of(
    "nerlab-spark-predict",
    spark_predict,
    allowed=(
        "run_id",
        "model",
        "input",
        "output",
        "format",
        "master",
        "partitions",
        "tracking_uri",
    ),
)


if __name__ == "__main__":
    raise SystemExit(main())
