"""Our CRF against pytorch-crf: :mod:`benchmarks.crf_bench` run in the peers' venv.

Both implementations are timed in that one child process, on identical batches of 32 sentences
with CoNLL-2003 training lengths, for K=9 (IOB2 tags, the headline) and K=17 (IOBES, what the
default model trains with). Without the peers' venv (or with ``use_peers=False``) our figures
are measured in this process and pytorch-crf's are None.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.peers import peer_python, run_json

TAG_COUNTS = (9, 17)
BATCH_SIZE = 32


def run(
    train_file: str | Path,
    *,
    quick: bool = False,
    threads: int | None = None,
    use_peers: bool = True,
    timeout: float | None = None,
) -> dict:
    python = peer_python() if use_peers else None
    if python is not None:
        command = [str(python), "-m", "benchmarks.crf_bench", "--json", str(train_file)]
        command += ["--tags", ",".join(map(str, TAG_COUNTS)), "--batch-size", str(BATCH_SIZE)]
        if quick:
            command.append("--quick")
        if threads:
            command += ["--threads", str(threads)]
        out = run_json(command, threads=threads, timeout=timeout)
        out["where"] = "peers venv (.venv-peers)"
        if not out.get("pytorch_crf_available"):
            out["peer_note"] = "pytorch-crf is not importable in .venv-peers"
        return out

    import numpy as np
    import torch

    from benchmarks import crf_bench

    lengths = crf_bench.read_conll_lengths(str(train_file))
    results = {
        str(k): crf_bench.run_crf_bench(
            lengths,
            k,
            batch_size=BATCH_SIZE,
            repeats=1 if quick else 7,
            num_batches=3 if quick else 40,
            include_parallel=not quick,
            include_peer=False,
        )
        for k in TAG_COUNTS
    }
    return {
        "path": str(train_file),
        "sentences": len(lengths),
        "mean_corpus_length": float(np.mean(lengths)),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "pytorch_crf_available": False,
        "results": results,
        "where": "project venv (ours only)",
        "peer_note": "peers skipped (peers=false)"
        if not use_peers
        else "peer not installed (no .venv-peers: run `make peers`)",
    }
