"""`make register` / `nerlab-register`: a run's model into the MLflow Model Registry.

    nerlab-register run_id=ID name=NAME [alias=champion] [tracking_uri=URI]
                    [test_file=FILE | calibration=false]

Registers ``runs:/ID/model`` as a new version of ``NAME`` (on the SQLite store or a tracking
server), tags the version with the run's test F1 (overall and per type), its calibration error
and the data it was trained on, sets its description to the model card, and points ``alias`` at
it. The calibration error is the run's ``eval_ece`` when ``make evaluate run_id=ID`` logged
one, else it is measured here on ``test_file=`` (default: the run's own test split). The last
stdout line is JSON: ``name``, ``version``, ``alias``, ``uri`` (``models:/NAME@ALIAS``) and
``tags``. ``Tagger.load(uri)`` and every ``model_dir=`` option then take that URI.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from nerlab.cli.options import main_of
from nerlab.errors import NerlabError

log = logging.getLogger(__name__)


def _run_test_file(run) -> Path | None:
    """The test file the run was scored on, if it is still there."""
    params = run.data.params
    name = params.get("data.test_file")
    if not name or name == "None":
        return None
    path = Path(name)
    if not path.is_absolute():
        folder = params.get("data_source.dir") or params.get("data.dir")
        if not folder or folder == "None":
            return None
        path = Path(folder) / path
    return path if path.is_file() else None


def measure_calibration(run_id: str, test_file: Path, tracking_uri: str | None) -> dict:
    """The expected calibration error of the run's model on ``test_file``."""
    from nerlab.analysis.calibration import calibration, scored_predictions
    from nerlab.data.conll import document_ids, read_conll, to_iob2
    from nerlab.inference import Tagger

    tagger = Tagger.load(f"runs:/{run_id}", tracking_uri=tracking_uri, batch_size=256)
    data = tagger.info.get("data") or {}
    sentences, _, _ = to_iob2(read_conll(test_file, data.get("tag_column", -1)), test_file)
    documents = None
    if tagger.uses_documents:
        documents = document_ids(sentences, data.get("documents") or "auto")
    _, probabilities, correct = scored_predictions(tagger, sentences, documents)
    return {**calibration(probabilities, correct), "split": test_file.name}


def register(options: dict[str, str]) -> int:
    from nerlab.training.registry import register_model, run_of

    for key in ("run_id", "name"):
        if not options.get(key):
            raise NerlabError(f"give run_id=ID name=NAME [alias=ALIAS]; {key} is missing")
    run_id, uri = options["run_id"], options.get("tracking_uri")
    run = run_of(run_id, uri)
    calibration = None
    if "eval_ece" not in run.data.metrics and options.get("calibration") != "false":
        test_file = Path(options["test_file"]) if "test_file" in options else _run_test_file(run)
        if test_file is None or not test_file.is_file():
            raise NerlabError(
                f"run_id={run_id}: its test file is not at hand to measure calibration; give "
                "test_file=FILE (or calibration=false)"
            )
        calibration = measure_calibration(run_id, test_file, uri)
    result = register_model(
        run_id,
        options["name"],
        alias=options.get("alias") or None,
        tracking_uri=uri,
        calibration=calibration,
    )
    log.info("registered %s (version %s)", result["uri"], result["version"])
    print(json.dumps(result))
    return 0


main = main_of(
    "nerlab-register",
    register,
    allowed=("run_id", "name", "alias", "tracking_uri", "test_file", "calibration"),
)


if __name__ == "__main__":
    raise SystemExit(main())
