"""The ``infer`` part: tagging the test split.

* ``infer`` (the headline, :func:`benchmarks.infer_bench.run_tagger`): the public
  ``nerlab.Tagger`` loaded from a saved model directory of the default model, tokens in and
  tags out, batches of 256; its ratios against spaCy and flair are on this figure;
* ``network_infer`` (:func:`benchmarks.infer_bench.run_network`): the network alone (to its
  emission scores) on already encoded batches, a secondary figure named as such;
* ``spacy_infer`` and ``flair_infer`` (the peers' venv): their whole ``nlp.pipe`` and
  ``predict`` calls (:mod:`benchmarks.spacy_bench`, :mod:`benchmarks.flair_bench`).
"""

from __future__ import annotations

from benchmarks.parts.part import Measurement, Part, join_notes, ratio
from benchmarks.report import Row, fmt


def _tagger(ctx) -> dict:
    from benchmarks import infer_bench

    return infer_bench.run_tagger(
        ctx.model_dir(),
        ctx.test_sentences(),
        repeats=ctx.repeats(),
        calls=30 if ctx.quick else 300,
        threads=ctx.threads,
    )


def _network(ctx) -> dict:
    from benchmarks import infer_bench

    return infer_bench.run_network(
        ctx.model(), repeats=ctx.repeats(), max_sentences=200 if ctx.quick else None
    )


def _spacy(ctx) -> dict:
    from benchmarks import spacy_bench

    return spacy_bench.run(
        ctx.data_dir, quick=ctx.quick, repeats=ctx.repeats(), timeout=ctx.timeout
    )


def _flair(ctx) -> dict:
    from benchmarks import flair_bench

    return flair_bench.run(
        "infer",
        ctx.data_dir,
        quick=ctx.quick,
        threads=ctx.threads,
        repeats=ctx.repeats(),
        timeout=ctx.timeout,
    )


def keys(ctx, earlier: dict) -> dict:
    tagger, network = ctx.result("infer"), ctx.result("network_infer")
    spacy, flair = ctx.result("spacy_infer"), ctx.result("flair_infer")
    ours = tagger.get("tokens_per_s")
    return {
        "infer_tokens_per_s": ours,
        "infer_tokens_per_s_batch1": tagger.get("batch1_tokens_per_s"),
        "infer_batch1_p50_ms": tagger.get("batch1_p50_ms"),
        "infer_batch1_p99_ms": tagger.get("batch1_p99_ms"),
        "network_infer_tokens_per_s": network.get("tokens_per_s"),
        "network_infer_tokens_per_s_batch1": network.get("batch1_tokens_per_s"),
        "spacy_infer_tokens_per_s": spacy.get("tokens_per_s"),
        "flair_infer_tokens_per_s": flair.get("tokens_per_s"),
        "infer_vs_spacy": ratio(ours, spacy.get("tokens_per_s")),
        "infer_vs_flair": ratio(ours, flair.get("tokens_per_s")),
    }


def peer_note(ctx, name: str) -> str:
    """How the peer's figure ``name`` (``spacy_infer``, ``flair_infer``) was measured, or why
    there is none."""
    peer = name.split("_")[0]
    label = {"flair": "flair", "spacy": "spaCy"}[peer]
    why = ctx.why(name) or ctx.notes.get(peer, "")
    got = ctx.result(name)
    if why or not got:
        return f"{label}: {why}" if why else ""
    if peer == "flair":
        return (
            f"flair: predict(mini_batch_size={got.get('batch_size')}), torch threads "
            f"{got.get('torch_threads')}; batches of 256: {fmt(got.get('batch256_tokens_per_s'))}"
        )
    return (
        f"spaCy: {'+'.join(got.get('components', []))} on pre-tokenized Docs, batch "
        f"{got.get('batch_size')}, {got.get('threads')} thread; ner alone: "
        f"{fmt(got.get('ner_only_tokens_per_s'))}"
    )


def rows(ctx, k: dict) -> list[Row]:
    batch = ctx.result("infer").get("batch_size", 256)
    network_batch = ctx.result("network_infer").get("batch_size", 256)
    return [
        Row(
            f"infer: Tagger.tag, batch {batch} (tokens/s)",
            k["infer_tokens_per_s"],
            "spaCy",
            k["spacy_infer_tokens_per_s"],
            k["infer_vs_spacy"],
            join_notes(ctx.why("infer"), peer_note(ctx, "spacy_infer")),
        ),
        Row(
            f"infer: Tagger.tag, batch {batch} (tokens/s), vs flair",
            k["infer_tokens_per_s"],
            "flair",
            k["flair_infer_tokens_per_s"],
            k["infer_vs_flair"],
            peer_note(ctx, "flair_infer"),
        ),
        Row("infer: Tagger.tag, one sentence a call (tokens/s)", k["infer_tokens_per_s_batch1"]),
        Row("infer: Tagger.tag, one 20-token sentence, p50 (ms)", k["infer_batch1_p50_ms"]),
        Row(
            f"infer: network only (emission scores), encoded batches of {network_batch} (tokens/s)",
            k["network_infer_tokens_per_s"],
            note=ctx.why("network_infer"),
        ),
        Row("infer: network only, batch 1 (tokens/s)", k["network_infer_tokens_per_s_batch1"]),
    ]


PART = Part(
    "infer",
    (
        Measurement("infer", _tagger),
        Measurement("network_infer", _network),
        Measurement("spacy_infer", _spacy, peer="spacy"),
        Measurement("flair_infer", _flair, peer="flair"),
    ),
    keys,
    rows,
    peer_keys=(
        "spacy_infer_tokens_per_s",
        "flair_infer_tokens_per_s",
        "infer_vs_spacy",
        "infer_vs_flair",
    ),
)
