"""The ``train`` part: epochs of ``make train`` as a user runs it, beside flair's
``ModelTrainer.train`` on the same data, and the bare training loop as a secondary figure.

* ``train`` (:mod:`benchmarks.train_bench` ``real``, a child process): the real configuration
  of the sentence-level recipe (``experiment=conll03_sentence``, the architecture of flair's
  ``SequenceTagger``) and ``nerlab.training.run.train`` for ``EPOCHS`` epochs, its figures read
  back from the MLflow store of the run; the headline ``train_sentences_per_s`` is training only
  (validation excluded, reported as ``train_val_seconds``), the median over the epochs after
  the first;
* ``train_default`` (``real --model default``): the same for ``make train``'s own default, the
  document-level model (``train_default_*``), beside it, with no peer;
* ``train_bare`` (``train_bench bare``): one epoch of a bare ``lightning.Trainer`` (no logger,
  callbacks or progress bar) after a warm-up, ``train_bare_loop_sentences_per_s``, and
  ``train_real_vs_bare`` = real / bare (below 1: what the real run's extras cost);
* ``flair_train`` (:mod:`benchmarks.flair_bench` ``train``, the peers' venv): flair's
  sentence-level ``SequenceTagger`` trained by ``ModelTrainer.train`` for as many epochs,
  timed the same way; ``train_vs_flair`` = ours / flair's.
"""

from __future__ import annotations

from benchmarks.parts.part import Measurement, Part, join_notes, ratio
from benchmarks.report import Row

#: epochs of each real run (ours and flair's); the figures are the epochs after the first
EPOCHS = 2


def _real_run(ctx, model: str) -> dict:
    from benchmarks import train_bench

    return train_bench.run(
        "real",
        ctx.data_dir,
        quick=ctx.quick,
        threads=ctx.threads,
        epochs=EPOCHS,
        timeout=ctx.timeout,
        model=model,
    )


def _real(ctx) -> dict:
    return _real_run(ctx, "sentence")


def _default(ctx) -> dict:
    return _real_run(ctx, "default")


def _bare(ctx) -> dict:
    from benchmarks import train_bench

    return train_bench.run(
        "bare", ctx.data_dir, quick=ctx.quick, threads=ctx.threads, timeout=ctx.timeout
    )


def _flair(ctx) -> dict:
    from benchmarks import flair_bench

    return flair_bench.run(
        "train",
        ctx.data_dir,
        quick=ctx.quick,
        threads=ctx.threads,
        epochs=EPOCHS,
        timeout=ctx.timeout,
    )


def keys(ctx, earlier: dict) -> dict:
    real, bare, flair = ctx.result("train"), ctx.result("train_bare"), ctx.result("flair_train")
    default = ctx.result("train_default")
    return {
        "train_default_sentences_per_s": default.get("sentences_per_s"),
        "train_default_epoch_seconds": default.get("train_seconds"),
        "train_default_val_seconds": default.get("val_seconds"),
        "train_default_peak_rss_mb": default.get("peak_rss_mb"),
        "train_sentence_vs_default": ratio(
            real.get("sentences_per_s"), default.get("sentences_per_s")
        ),
        "train_sentences_per_s": real.get("sentences_per_s"),
        "train_tokens_per_s": real.get("tokens_per_s"),
        "train_epoch_seconds": real.get("train_seconds"),
        "train_val_seconds": real.get("val_seconds"),
        "train_epochs": real.get("epochs_run"),
        "train_full_epoch": real.get("full_epoch"),
        "train_peak_rss_mb": real.get("peak_rss_mb"),
        "train_bare_loop_sentences_per_s": bare.get("sentences_per_s"),
        "train_bare_loop_tokens_per_s": bare.get("tokens_per_s"),
        "train_bare_loop_epoch_seconds": bare.get("fit_seconds"),
        "train_real_vs_bare": ratio(real.get("sentences_per_s"), bare.get("sentences_per_s")),
        "flair_train_sentences_per_s": flair.get("sentences_per_s"),
        "flair_train_sentences": flair.get("sentences"),  # per timed epoch
        "flair_train_epoch_seconds": flair.get("train_seconds"),
        "train_vs_flair": ratio(real.get("sentences_per_s"), flair.get("sentences_per_s")),
    }


def flair_note(ctx) -> str:
    """How flair's figure was measured, or why there is none."""
    why = ctx.why("flair_train") or ctx.notes.get("flair", "")
    got = ctx.result("flair_train")
    if why or not got:
        return f"flair: {why}" if why else ""
    return (
        f"flair: ModelTrainer.train, {got.get('epochs_run')} epochs of {got.get('sentences')} "
        f"sentences ({got.get('figure')}), batches of {got.get('batch_size')}, "
        f"torch threads {got.get('torch_threads')}"
    )


def _our_note(ctx) -> str:
    got = ctx.result("train")
    if not got:
        return ctx.why("train")
    cut = "" if got.get("full_epoch") else "quick: part of each epoch; "
    recipe = "the default" if got.get("model") == "default" else "experiment=conll03_sentence"
    return f"{cut}make train {recipe}, {got.get('epochs_run')} epochs ({got.get('figure')})"


def _default_note(ctx) -> str:
    got = ctx.result("train_default")
    if not got:
        return ctx.why("train_default")
    cut = "" if got.get("full_epoch") else "quick: part of each epoch; "
    return f"{cut}make train (document-level), {got.get('epochs_run')} epochs ({got.get('figure')})"


def rows(ctx, k: dict) -> list[Row]:
    return [
        Row(
            "train: sentence-level model (conll03_sentence), training only (sentences/s)",
            k["train_sentences_per_s"],
            "flair",
            k["flair_train_sentences_per_s"],
            k["train_vs_flair"],
            join_notes(_our_note(ctx), flair_note(ctx)),
        ),
        Row(
            "train: sentence-level model epoch, training only (s)",
            k["train_epoch_seconds"],
            "flair",
            k["flair_train_epoch_seconds"],
            ratio(k["flair_train_epoch_seconds"], k["train_epoch_seconds"]),
        ),
        Row("train: sentence-level model validation, one epoch (s)", k["train_val_seconds"]),
        Row("train: sentence-level model peak RSS (MB)", k["train_peak_rss_mb"]),
        Row(
            "train: the default (document-level), training only (sentences/s)",
            k["train_default_sentences_per_s"],
            note=_default_note(ctx),
        ),
        Row("train: the default, epoch, training only (s)", k["train_default_epoch_seconds"]),
        Row("train: the default, validation, one epoch (s)", k["train_default_val_seconds"]),
        Row("train: sentence-level / default (sentences/s)", k["train_sentence_vs_default"]),
        Row(
            "train: bare Trainer loop, one epoch (sentences/s)",
            k["train_bare_loop_sentences_per_s"],
            note=ctx.why("train_bare"),
        ),
        Row("train: make train / bare loop", k["train_real_vs_bare"]),
    ]


PART = Part(
    "train",
    (
        Measurement("train", _real),
        Measurement("train_default", _default),
        Measurement("train_bare", _bare),
        Measurement("flair_train", _flair, peer="flair"),
    ),
    keys,
    rows,
    peer_keys=(
        "flair_train_sentences_per_s",
        "flair_train_sentences",
        "flair_train_epoch_seconds",
        "train_vs_flair",
    ),
)
