"""The ``crf`` part: our CRF's compiled (numba) and torch backends against pytorch-crf, in the
peers' venv when there is one (:mod:`benchmarks.crf_comparison`), at K=9 (IOB2, the headline)
and K=17 (IOBES, what the default model trains with).

``crf_torch_nll_sentences_per_s`` is the torch backend's log-likelihood forward+backward on the
CPU (the backend a GPU uses), beside the compiled one, so that a regression shows.
"""

from __future__ import annotations

from benchmarks.parts.part import Measurement, Part, ratio
from benchmarks.report import Row

#: (K, key prefix)
TAG_COUNTS = (("9", "crf"), ("17", "crf_k17"))
WORKS = (("nll", "NLL fwd+bwd"), ("viterbi", "Viterbi"))


def _run(ctx) -> dict:
    from benchmarks import crf_comparison

    return crf_comparison.run(
        ctx.data_dir / "train.txt",
        quick=ctx.quick,
        threads=ctx.threads,
        use_peers=ctx.options["peers"],
        timeout=ctx.timeout,
    )


def keys(ctx, earlier: dict) -> dict:
    results = ctx.result("crf").get("results", {})
    out: dict = {}
    for k, prefix in TAG_COUNTS:
        got = results.get(k, {})
        peer_nll = got.get("pytorch_crf_nll_sps")
        for work, _label in WORKS:
            ours, peer = got.get(f"ours_numba_{work}_sps"), got.get(f"pytorch_crf_{work}_sps")
            out[f"{prefix}_{work}_sentences_per_s"] = ours
            out[f"{prefix}_{work}_pytorch_crf_sentences_per_s"] = peer
            out[f"{prefix}_{work}_speedup"] = ratio(ours, peer)
        out[f"{prefix}_torch_nll_sentences_per_s"] = got.get("ours_torch_nll_sps")
        out[f"{prefix}_torch_nll_speedup"] = ratio(got.get("ours_torch_nll_sps"), peer_nll)
    return out


def rows(ctx, k: dict) -> list[Row]:
    note = ctx.why("crf") or ctx.result("crf").get("peer_note", "")
    out = []
    for tags, prefix in TAG_COUNTS:
        for work, label in WORKS:
            out.append(
                Row(
                    f"CRF {label} K={tags} (sentences/s)",
                    k[f"{prefix}_{work}_sentences_per_s"],
                    "pytorch-crf",
                    k[f"{prefix}_{work}_pytorch_crf_sentences_per_s"],
                    k[f"{prefix}_{work}_speedup"],
                    note if (tags, work) == ("9", "nll") else "",
                )
            )
        out.append(
            Row(
                f"CRF NLL fwd+bwd K={tags}, torch backend on the CPU (sentences/s)",
                k[f"{prefix}_torch_nll_sentences_per_s"],
                "pytorch-crf",
                k[f"{prefix}_nll_pytorch_crf_sentences_per_s"],
                k[f"{prefix}_torch_nll_speedup"],
            )
        )
    return out


PEER_KEYS = tuple(
    f"{prefix}_{key}"
    for _k, prefix in TAG_COUNTS
    for key in (
        *(f"{work}_pytorch_crf_sentences_per_s" for work, _ in WORKS),
        *(f"{work}_speedup" for work, _ in WORKS),
        "torch_nll_speedup",
    )
)
PART = Part("crf", (Measurement("crf", _run),), keys, rows, peer_keys=PEER_KEYS)
