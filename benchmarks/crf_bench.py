"""CRF speed benchmark: ``nerlab.crf.CRF`` (numba and torch backends) against pytorch-crf.

Every implementation gets identical random inputs: batches of ``batch_size`` sentences whose
lengths are sampled from ``lengths`` (the caller passes real corpus lengths), with the same
transition scores. Two workloads are timed, each reported in sentences per second:

* ``nll``: log-likelihood forward plus backward (gradients for emissions and all scores);
* ``viterbi``: decoding under ``torch.no_grad()``.

pytorch-crf is not a dependency of the project; install it in a separate environment and run

    PYTHONPATH=src .venv-peers/bin/python -m benchmarks.crf_bench [path/to/train.txt]

(``make peers`` creates ``.venv-peers``). ``--json`` prints one JSON object instead of the
table (``python -m benchmarks`` reads it); ``--quick`` times a few small batches only.

This module imports only torch, numpy, numba (through the kernels) and :mod:`nerlab.crf`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from nerlab.crf import CRF

try:
    import torchcrf
except ImportError:  # pytorch-crf is optional: its columns are then None
    torchcrf = None

DEFAULT_CONLL_TRAIN = "/work/shared/data/conll2003/train.txt"


def read_conll_lengths(path: str) -> list[int]:
    """Sentence lengths of a CoNLL file (read as training reads it; tags are not needed)."""
    from nerlab.data.conll import iter_conll

    return [len(s.tokens) for s in iter_conll(path, labelled=False)]


def _make_batches(
    lengths: Sequence[int], num_tags: int, batch_size: int, num_batches: int, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(num_batches):
        lens = torch.from_numpy(rng.choice(np.asarray(lengths), size=batch_size)).long()
        seq_len = int(lens.max())
        emissions = torch.randn(batch_size, seq_len, num_tags, generator=gen)
        tags = torch.randint(num_tags, (batch_size, seq_len), generator=gen)
        mask = torch.arange(seq_len).unsqueeze(0) < lens.unsqueeze(1)  # (B, L) left-aligned
        batches.append((emissions, tags, mask))
    return batches


def _passes(crf_nll, crf_decode, params, batches) -> tuple[Callable, Callable]:
    """One pass over all batches for each workload: NLL forward+backward, and Viterbi."""

    def nll_pass():
        for emissions, tags, mask in batches:
            em = emissions.requires_grad_(True)
            crf_nll(em, tags, mask).backward()
            em.grad = None
            for p in params:
                p.grad = None

    def viterbi_pass():
        with torch.no_grad():
            for emissions, _, mask in batches:
                crf_decode(emissions, mask)

    return nll_pass, viterbi_pass


def _time_round_robin(passes: dict[str, Callable], repeats: int) -> dict[str, float]:
    """Best time of each pass over ``repeats`` rounds, every round running every pass once, so
    that a burst of load from another process hits all implementations alike."""
    for run in passes.values():  # warm-up (also compiles or loads the numba kernels)
        run()
    best = dict.fromkeys(passes, float("inf"))
    for _ in range(repeats):
        for name, run in passes.items():
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _ours(num_tags: int, include_parallel: bool) -> dict[str, CRF]:
    """Our CRFs, every one with the same scores: numba serial (the default kernels), numba
    prange (opt-in, with ``include_parallel``) and torch."""
    ours_numba = CRF(num_tags, backend="numba")
    ours_numba.parallel = False
    crfs = {"ours_numba": ours_numba}
    if include_parallel:
        crfs["ours_numba_parallel"] = CRF(num_tags, backend="numba")
        crfs["ours_numba_parallel"].parallel = True
    crfs["ours_torch"] = CRF(num_tags, backend="torch")
    for crf in crfs.values():
        crf.load_state_dict(ours_numba.state_dict())
    return crfs


def _peer_like(crf: CRF):
    """pytorch-crf's CRF with ``crf``'s scores."""
    peer = torchcrf.CRF(crf.num_tags, batch_first=True)
    with torch.no_grad():
        peer.transitions.copy_(crf.transitions)
        peer.start_transitions.copy_(crf.start_transitions)
        peer.end_transitions.copy_(crf.end_transitions)
    return peer


def _agreement(ours: CRF, peer, batches) -> dict:
    """Largest log-likelihood difference and whether every Viterbi path is the same."""
    diff, agree = 0.0, True
    with torch.no_grad():
        for emissions, tags, mask in batches:
            llh = ours.log_likelihood(emissions, tags, mask)
            theirs = peer(emissions, tags, mask, reduction="none")
            diff = max(diff, float((llh - theirs).abs().max()))
            decoded = ours.decode(emissions, mask)
            for row, path in enumerate(peer.decode(emissions, mask)):
                agree &= decoded[row, : len(path)].tolist() == path
    return {"max_llh_diff": diff, "viterbi_agree": agree}


def run_crf_bench(
    lengths: list[int],
    num_tags: int,
    batch_size: int = 32,
    repeats: int = 7,
    num_batches: int = 40,
    seed: int = 0,
    include_parallel: bool = True,
    include_peer: bool = True,
) -> dict:
    """Time our CRF (numba and torch backends) and pytorch-crf on identical inputs.

    Returns sentences/second for NLL forward+backward (``*_nll_sps``) and Viterbi
    (``*_viterbi_sps``) for ``ours_numba`` (the default serial kernels), ``ours_torch``,
    ``pytorch_crf`` (None when ``torchcrf`` is not importable) and, with
    ``include_parallel``, ``ours_numba_parallel`` (the opt-in prange kernels); the speedups
    ``crf_nll_speedup`` and ``crf_viterbi_speedup`` (ours numba / pytorch-crf, None without
    it or with ``include_peer=False``); and checks that the implementations agree
    (``max_llh_diff``, ``viterbi_agree``).
    Each rate is the best of ``repeats`` passes over ``num_batches`` batches, the
    implementations taking turns, after a warm-up pass.
    """
    torch.manual_seed(seed)
    batches = _make_batches(lengths, num_tags, batch_size, num_batches, seed)
    crfs = _ours(num_tags, include_parallel)
    passes: dict[str, Callable] = {}
    for name, crf in crfs.items():
        passes[f"{name}_nll"], passes[f"{name}_viterbi"] = _passes(
            lambda e, t, m, crf=crf: crf(e, t, m, reduction="sum"),
            crf.decode,
            list(crf.parameters()),
            batches,
        )
    peer = _peer_like(crfs["ours_numba"]) if torchcrf is not None and include_peer else None
    if peer is not None:
        passes["pytorch_crf_nll"], passes["pytorch_crf_viterbi"] = _passes(
            lambda e, t, m: -peer(e, t, m, reduction="sum"),
            peer.decode,
            list(peer.parameters()),
            batches,
        )

    sentences = batch_size * num_batches
    best = _time_round_robin(passes, repeats)
    result: dict = {
        "num_tags": num_tags,
        "batch_size": batch_size,
        "num_batches": num_batches,
        "repeats": repeats,
        "mean_length": float(np.mean([int(m.sum()) / m.size(0) for _, _, m in batches])),
        "torch_threads": torch.get_num_threads(),
        "pytorch_crf_nll_sps": None,
        "pytorch_crf_viterbi_sps": None,
    }
    for key, seconds in best.items():
        result[f"{key}_sps"] = sentences / seconds
    result.update(crf_nll_speedup=None, crf_viterbi_speedup=None)
    result.update(max_llh_diff=None, viterbi_agree=None)
    if peer is not None:
        for work in ("nll", "viterbi"):
            result[f"crf_{work}_speedup"] = (
                result[f"ours_numba_{work}_sps"] / result[f"pytorch_crf_{work}_sps"]
            )
        result.update(_agreement(crfs["ours_numba"], peer, batches))
    return result


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crf_bench")
    parser.add_argument("path", nargs="?", default=DEFAULT_CONLL_TRAIN, help="CoNLL file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a few small batches (smoke test)")
    parser.add_argument("--tags", default="9,17", help="tag counts K, comma-separated")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=None, help="batches per pass (40)")
    parser.add_argument("--repeats", type=int, default=None, help="timed passes (7)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--no-parallel", action="store_true", help="skip the prange kernels")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:  # numba's OpenMP layer would otherwise reset torch's count to its own
        import numba

        torch.set_num_threads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    num_batches = args.batches or (3 if args.quick else 40)
    repeats = args.repeats or (1 if args.quick else 7)
    tag_counts = [int(k) for k in args.tags.split(",") if k.strip()]
    lengths = read_conll_lengths(args.path)
    results = {
        num_tags: run_crf_bench(
            lengths,
            num_tags,
            batch_size=args.batch_size,
            repeats=repeats,
            num_batches=num_batches,
            include_parallel=not args.no_parallel,
        )
        for num_tags in tag_counts
    }
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(args.path),
                    "sentences": len(lengths),
                    "mean_corpus_length": float(np.mean(lengths)),
                    "torch_version": torch.__version__,
                    "torch_threads": torch.get_num_threads(),
                    "pytorch_crf_available": torchcrf is not None,
                    "results": {str(k): r for k, r in results.items()},
                }
            )
        )
        return
    print(f"{len(lengths)} sentences from {args.path}, mean length {np.mean(lengths):.1f}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; sentences/second:")
    header = f"{'K':>3} {'impl':<20} {'NLL fwd+bwd':>12} {'Viterbi':>10}"
    print(header)
    for num_tags, r in results.items():
        for impl in ("ours_numba", "ours_numba_parallel", "ours_torch", "pytorch_crf"):
            if f"{impl}_nll_sps" not in r:
                continue
            nll, vit = r[f"{impl}_nll_sps"], r[f"{impl}_viterbi_sps"]
            print(f"{num_tags:>3} {impl:<20} {_fmt(nll):>12} {_fmt(vit):>10}")
        print(
            f"{num_tags:>3} {'speedup':<20} {_fmt(r['crf_nll_speedup']):>12} "
            f"{_fmt(r['crf_viterbi_speedup']):>10}   (ours numba / pytorch-crf; "
            f"max |llh diff| {r['max_llh_diff']}, viterbi agree {r['viterbi_agree']})"
        )


if __name__ == "__main__":
    main()
