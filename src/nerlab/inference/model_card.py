"""``MODEL_CARD.md``: a short card generated from ``model_info.json`` for every saved model (and
as the description of a registered version): the data, the entity types, the scores per type
with the command that measures them, calibration, intended use and known limits."""

from __future__ import annotations

from typing import Any

CARD_NAME = "MODEL_CARD.md"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _architecture(model: dict[str, Any]) -> str:
    char = {"cnn": "a char CNN", "lstm": "a char BiLSTM", "none": "no character features"}
    parts = [
        f"word embeddings ({model.get('word_embedding_dims')}d)",
        char.get(model.get("char", "cnn"), str(model.get("char"))),
        f"a BiLSTM ({model.get('entity_tagger_lstm_dims')} per direction)",
    ]
    if model.get("document_memory"):
        pooling = model.get("document_pooling", "mean")
        parts.append(
            f"a document memory ({pooling} of the other mentions of each capitalized word)"
        )
        if model.get("document_encoder_dims"):
            parts.append(
                f"a second BiLSTM over it ({model['document_encoder_dims']} per direction)"
            )
    parts.append("a linear-chain CRF" if model.get("crf", True) else "a softmax per token")
    return ", ".join(parts)


def model_card(
    info: dict[str, Any],
    *,
    title: str = "nerlab model",
    calibration: dict[str, Any] | None = None,
    registered: str | None = None,
) -> str:
    """The card of a model from its ``info`` (``model_info.json``); ``calibration`` (``{"ece",
    "spans", "split"}``) when it was measured; ``registered``: its ``models:/`` URI."""
    model, data = info.get("model", {}), info.get("data") or {}
    source = data.get("source") or {}
    scores = info.get("scores") or {}
    test = scores.get("test") or {}
    types = info.get("entity_types") or []
    lines = [f"# {title}", ""]
    if registered:
        lines += [f"Registered as `{registered}`.", ""]
    lines += [
        "## Model",
        f"- Architecture: {_architecture(model)} (Lample et al. 2016"
        + (", with document context" if model.get("document_memory") else "")
        + ").",
        f"- Tags: {info.get('tag_scheme', '?').upper()} over {', '.join(types) or 'no types'}.",
        f"- MLflow run: `{info.get('mlflow_run_id') or 'none'}`.",
        "",
        "## Data",
        f"- Trained on `{source.get('dataset') or 'a column-file data set'}` from "
        f"`{source.get('dir') or 'unknown'}` ({source.get('origin') or 'origin not recorded'}); "
        f"tag column {data.get('tag_column', -1)}.",
        f"- Documents: `{data.get('documents', 'auto')}` "
        + (
            "(the model reads the other sentences of a document: give it whole documents)."
            if model.get("document_memory")
            else "(each sentence is tagged alone)."
        ),
        "",
        "## Scores",
    ]
    if test:
        lines += [
            f"Test split, entity level (seqeval, IOB2): F1 **{_pct(test.get('f1'))}**, precision "
            f"{_pct(test.get('precision'))}, recall {_pct(test.get('recall'))}; validation F1 "
            f"{_pct(scores.get('val_f1'))}.",
            "",
            "| type | precision | recall | F1 | support |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name, row in sorted((test.get("per_type") or {}).items()):
            lines.append(
                f"| {name} | {_pct(row.get('precision'))} | {_pct(row.get('recall'))} | "
                f"{_pct(row.get('f1'))} | {row.get('support', '-')} |"
            )
        lines += [
            "",
            "Measured at the end of training on the best validation checkpoint; "
            "`make evaluate model_dir=DIR test_file=TEST` measures them again.",
        ]
    else:
        lines.append("Not tested at training: `make evaluate model_dir=DIR test_file=TEST`.")
    lines += ["", "## Calibration"]
    if calibration:
        lines.append(
            f"Expected calibration error of the span probabilities (`confidence`) on the "
            f"{calibration.get('split', 'test')} split: **{calibration['ece']:.4f}** over "
            f"{calibration.get('spans')} predicted spans, 10 bins "
            "(`make evaluate` reports it with a reliability plot)."
        )
    else:
        lines.append(
            "Not measured at training: `make evaluate model_dir=DIR test_file=TEST` reports the "
            "expected calibration error of the span probabilities (`make register` records it)."
        )
    lines += [
        "",
        "## Intended use",
        "Named entities in English newswire-like text tokenized like CoNLL-2003; span "
        "probabilities to rank, filter or route predictions for review.",
        "",
        "## Known limits",
        "- Only the entity types above; text far from the training data (other languages, "
        "domains, casing) scores lower, and the vectors are uncased 50d GloVe.",
        "- Repeated mentions of a name in one document can get different labels.",
        "- The probabilities are calibrated on data like the training data; on other data "
        "measure them again before relying on a threshold.",
        "",
    ]
    return "\n".join(lines)
