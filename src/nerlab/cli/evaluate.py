"""`make evaluate` / `nerlab-evaluate`: entity scores of a saved model on a labelled file.

    nerlab-evaluate model_dir=DIR test_file=FILE [tag_column=N] [batch_size=256]
                    [predictions=OUT.conll] [plot=FILE.png] [bins=10] [calibration=false]
                    [backend=torch|onnx] [quantize=int8] [documents=auto|docstart|file|N]
                    [run_id=ID] [tracking_uri=URI] [prefix=eval]

The last stdout line is JSON: ``f1``, ``precision``, ``recall``, ``per_type``
(``{TYPE: {precision, recall, f1, support}}``), ``calibration`` (the expected calibration
error of the entities' span probabilities, ``ece``, and its bins) and, for a document model,
``mention_consistency`` (of the names mentioned more than once in a document, how many got
different labels: ``predicted`` and the ``gold`` data's own); a readable report goes to
stderr. The reliability plot is written to ``plot=``, else beside ``predictions=`` (as
``NAME.reliability.png``). Under a tracked run (``run_id=`` or the ``MLFLOW_RUN_ID``
environment variable) the scores are logged to it as ``{prefix}_f1``, ``{prefix}_ece``, ... and
the plot as the artifact ``evaluation/{prefix}_reliability.png``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from nerlab.analysis.calibration import calibration, reliability_plot, scored_predictions
from nerlab.cli.options import load_tagger, main_of
from nerlab.data.conll import document_ids, read_conll, to_iob2, write_conll
from nerlab.errors import NerlabError
from nerlab.files import REPO_ROOT
from nerlab.training.metrics import classification_report, score_predictions, score_tagger


def _plot_path(options: dict[str, str]) -> Path | None:
    if "plot" in options:
        return Path(options["plot"])
    if "predictions" in options:
        predictions = Path(options["predictions"])
        return predictions.with_name(predictions.stem + ".reliability.png")
    return None


def _log_to_run(run_id: str, options: dict[str, str], scores: dict, plot: Path | None) -> None:
    """Log the scores (and the plot) to an existing MLflow run."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = options.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    client = MlflowClient(uri or f"sqlite:///{REPO_ROOT / 'mlruns.db'}")
    prefix = options.get("prefix", "eval")
    try:
        client.get_run(run_id)
    except MlflowException:
        raise NerlabError(f"run_id={run_id}: no such MLflow run in {client.tracking_uri}") from None
    metrics = {f"{prefix}_{k}": scores[k] for k in ("f1", "precision", "recall")}
    if "calibration" in scores:
        metrics[f"{prefix}_ece"] = scores["calibration"]["ece"]
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    if "calibration" in scores:
        with tempfile.TemporaryDirectory() as tmp:
            path = (
                reliability_plot(scores["calibration"], Path(tmp) / f"{prefix}_reliability.png")
                if plot is None
                else plot
            )
            client.log_artifact(run_id, str(path), "evaluation")


def evaluate(options: dict[str, str]) -> int:
    if "test_file" not in options:
        raise NerlabError("give test_file=FILE")
    with_calibration = options.get("calibration", "true") != "false"
    bins = int(options.get("bins", 10))
    if bins < 1:
        raise NerlabError(f"bins must be at least 1, found {bins}")
    tagger = load_tagger({"batch_size": "256", **options})
    default_column = (tagger.info.get("data") or {}).get("tag_column", -1)
    tag_column = int(options.get("tag_column", default_column))
    path = Path(options["test_file"])
    sentences, _, _ = to_iob2(read_conll(path, tag_column), path)
    documents = None
    if tagger.uses_documents:  # the documents the model was trained with, read the same way
        setting = options.get("documents", (tagger.info.get("data") or {}).get("documents"))
        documents = document_ids(sentences, setting or "auto")
    if with_calibration and tagger.has_crf:
        predictions, probabilities, correct = scored_predictions(tagger, sentences, documents)
        scores = score_predictions(tagger.entity_types, sentences, predictions)
        scores["calibration"] = calibration(probabilities, correct, bins)
    else:
        scores, predictions = score_tagger(tagger, sentences, documents)
    if documents is not None:  # repeated names of a document labelled differently
        from nerlab.analysis.error_analysis import mention_consistency

        tokens = [s.tokens for s in sentences]
        scores["mention_consistency"] = {
            "predicted": mention_consistency(tokens, predictions, documents),
            "gold": mention_consistency(tokens, [s.tags for s in sentences], documents),
        }
    if "predictions" in options:
        write_conll(
            options["predictions"],
            (
                list(zip(s.tokens, s.tags, p, strict=True))
                for s, p in zip(sentences, predictions, strict=True)
            ),
        )
    scores["backend"] = tagger.backend
    scores["quantize"] = getattr(tagger.runner, "quantize", None)
    plot = _plot_path(options)
    if "calibration" in scores and plot is not None:
        reliability_plot(
            scores["calibration"],
            plot,
            f"{path.name}: ECE "
            f"{scores['calibration']['ece']:.4f} over "
            f"{scores['calibration']['spans']} spans",
        )
        scores["reliability_plot"] = str(plot)
    run_id = options.get("run_id") or os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        _log_to_run(run_id, options, scores, plot)
    print(classification_report(scores), file=sys.stderr)
    if "calibration" in scores:
        cal = scores["calibration"]
        print(
            f"expected calibration error {cal['ece']:.4f} over {cal['spans']} predicted "
            f"spans ({len(cal['bins'])} non-empty bins of {bins})",
            file=sys.stderr,
        )
    print(json.dumps(scores))
    return 0


main = main_of("nerlab-evaluate", evaluate)


if __name__ == "__main__":
    raise SystemExit(main())
