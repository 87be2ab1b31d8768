"""`make results` / `nerlab-results`: test F1 over seeds, one row per recipe, from MLflow.

    nerlab-results [experiments=conll03_default,conll03_bio] [tracking_uri=sqlite:///mlruns.db]
                   [json=results.json]

Prints the table as Markdown (``nerlab.analysis.results``); ``json=`` also writes its records.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nerlab.cli.options import main_of
from nerlab.errors import NerlabError


def results(options: dict[str, str]) -> int:
    from nerlab.analysis.results import RECIPES, summarize, to_markdown

    experiments = [e for e in options.get("experiments", "").split(",") if e] or list(RECIPES)
    try:
        uri = options.get("tracking_uri", options.get("tracking-uri", "sqlite:///mlruns.db"))
        table = summarize(uri, experiments)
    except FileNotFoundError as err:  # a missing store
        raise NerlabError(str(err)) from None
    print(to_markdown(table))
    if "json" in options:
        records = table.replace({np.nan: None}).to_dict("records")
        Path(options["json"]).write_text(json.dumps(records, indent=2) + "\n")
    return 0


main = main_of(
    "nerlab-results", results, allowed=("experiments", "tracking_uri", "tracking-uri", "json")
)


if __name__ == "__main__":
    raise SystemExit(main())
