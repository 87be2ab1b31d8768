"""Cold start and peak memory of the tagger at inference, in a process of its own.

``python -m benchmarks.tagger_rss --model-dir DIR --file test.txt --started-at T --json`` loads a
saved model directory with :class:`nerlab.Tagger` (what a user ships; ``--backend onnx
[--quantize int8]``: the exported model, without torch), tags the file's first sentence, then
every sentence in batches, and reports ``cold_start_s`` (from ``T``, the parent's
``time.time()`` just before it started this process, to the first sentence's tags: interpreter
start, imports, loading and the first call's compilation together), ``peak_rss_mb``
(``VmHWM`` of this process: Python, torch, the model and the tagged data together), the
tokens tagged and the seconds it took, and which training-stack modules were imported (none
should be).
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.peers import peak_rss_mb, print_result

TRAINING_STACK = ("lightning", "torchmetrics", "hydra", "mlflow")


def measure(
    model_dir: str,
    file: str,
    *,
    threads: int | None = None,
    started_at: float | None = None,
    backend: str = "torch",
    quantize: str | None = None,
) -> dict:
    from nerlab.data import read_conll
    from nerlab.inference import Tagger

    if threads and backend == "torch":
        import torch

        torch.set_num_threads(threads)
    before = peak_rss_mb()
    tagger = Tagger.load(model_dir, backend=backend, quantize=quantize, threads=threads)
    sentences = [s.tokens for s in read_conll(file)]
    tagger.tag(sentences[:1])
    cold_start = time.time() - started_at if started_at is not None else None
    start = time.perf_counter()
    tags = tagger.tag(sentences)
    seconds = time.perf_counter() - start
    return {
        "cold_start_s": cold_start,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_load_mb": before,
        "sentences": len(sentences),
        "tokens": sum(len(t) for t in tags),
        "seconds": seconds,
        "torch_threads": sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None,
        "backend": backend,
        "quantize": quantize,
        "torch_imported": "torch" in sys.modules,
        "training_stack_imported": sorted(m for m in TRAINING_STACK if m in sys.modules),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tagger_rss")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--file", required=True, help="a CoNLL file whose sentences are tagged")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--started-at", type=float, default=None, help="the parent's time.time()")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--quantize", default=None, choices=("int8",))
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    result = measure(
        args.model_dir,
        args.file,
        threads=args.threads,
        started_at=args.started_at,
        backend=args.backend,
        quantize=args.quantize,
    )
    print_result(result, args.json)


if __name__ == "__main__":
    main()
