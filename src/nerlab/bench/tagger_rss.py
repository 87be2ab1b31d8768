"""Peak memory of the tagger at inference, in a process of its own.

``python -m nerlab.bench.tagger_rss --model-dir DIR --file test.txt --json`` loads a saved model
directory with :class:`nerlab.Tagger` (what a user ships), tags every sentence of the file in
batches, and reports ``peak_rss_mb`` (``ru_maxrss`` of this process: Python, torch, the model
and the tagged data together) with the tokens tagged and the seconds it took.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from nerlab.bench.peers import print_result


def measure(model_dir: str, file: str, *, threads: int | None = None) -> dict:
    import torch

    from nerlab.bench.peers import set_threads
    from nerlab.data import read_conll
    from nerlab.inference import Tagger

    if threads:
        set_threads(threads)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tagger = Tagger.load(model_dir)
    sentences = [s.tokens for s in read_conll(file)]
    start = time.perf_counter()
    tags = tagger.tag(sentences)
    seconds = time.perf_counter() - start
    return {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_load_mb": before,
        "sentences": len(sentences),
        "tokens": sum(len(t) for t in tags),
        "seconds": seconds,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nerlab.bench.tagger_rss")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--file", required=True, help="a CoNLL file whose sentences are tagged")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    print_result(measure(args.model_dir, args.file, threads=args.threads), args.json)


if __name__ == "__main__":
    main()
