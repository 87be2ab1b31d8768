"""Shared fixtures: small column files written by the tests, and the real data when present."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONLL_DIR = ROOT.parent / "shared" / "data" / "conll2003"

# Tests never touch the network; MLflow and Hydra must not try either.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

PERSONS = ["John", "Mary", "Peter", "Anna", "Ali", "Chen"]
PLACES = ["London", "Paris", "Berlin", "Tokyo", "Lagos", "Lima"]
ORGS = [("United", "Nations"), ("Acme", "Corp"), ("Red", "Cross")]
FILLER = ["lives", "in", "works", "for", "visited", "and", "the", "city", "today", "."]


def make_sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Random but learnable sentences: entities come from fixed lists, tags are IOB2."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tokens, tags = [], []
        for _ in range(rng.randint(1, 4)):
            kind = rng.random()
            if kind < 0.25:
                tokens.append(rng.choice(PERSONS))
                tags.append("B-PER")
            elif kind < 0.5:
                tokens.append(rng.choice(PLACES))
                tags.append("B-LOC")
            elif kind < 0.65:
                a, b = rng.choice(ORGS)
                tokens += [a, b]
                tags += ["B-ORG", "I-ORG"]
            else:
                tokens.append(rng.choice(FILLER))
                tags.append("O")
            tokens.append(rng.choice(FILLER))
            tags.append("O")
        out.append((tokens, tags))
    return out


#: sentences per -DOCSTART- document in the fixtures (CoNLL-2003's documents hold about 14): a
#: document model trains on batches of whole documents, so one document per file would make
#: each epoch a single batch
DOC_SENTENCES = 4


def write_conll(path: Path, sentences, *, pos: bool = True, docstart: bool = True) -> Path:
    lines = []
    for i, (tokens, tags) in enumerate(sentences):
        if docstart and i % DOC_SENTENCES == 0:
            lines += ["-DOCSTART- -X- -X- O", ""]
        for token, tag in zip(tokens, tags, strict=True):
            lines.append(f"{token} NN B-NP {tag}" if pos else f"{token} {tag}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A folder with train.txt, valid.txt and test.txt in CoNLL-2003's four-column layout."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    write_conll(folder / "train.txt", make_sentences(120, seed=1))
    write_conll(folder / "valid.txt", make_sentences(30, seed=2))
    write_conll(folder / "test.txt", make_sentences(30, seed=3))
    return folder


SMALL = [
    "vectors=none",
    "model.word_embedding_dims=16",
    "model.character_embedding_dims=8",
    "model.char_features_dims=8",
    "model.entity_tagger_lstm_dims=16",
    "model.document_encoder_dims=8",  # the default's second encoder, small
    "data.batch_size=8",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def compose_cfg(tmp_path: Path, corpus: Path, *overrides: str):
    """The real composed training config, shrunk, with every output under ``tmp_path``."""
    from nerlab.training.config import compose

    return compose(
        ["data=bio", f"data.dir={corpus}", f"paths.root_dir={tmp_path}", *SMALL, *overrides],
        output_dir=tmp_path / "run",
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 (test servers bind the loopback only)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, seconds: float = 120) -> None:
    """Poll ``url`` until it answers 200; fail with the server's stderr if it exits or
    ``seconds`` pass first."""
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                err = server.stderr.read() if server.stderr else b""
                raise AssertionError(err.decode()[-2000:] if err else f"{url}: no answer") from None
            time.sleep(0.5)


@pytest.fixture
def conll_dir() -> Path:
    if not (CONLL_DIR / "train.txt").exists():
        pytest.skip("the real CoNLL-2003 data is not beside the repository")
    return CONLL_DIR


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A small model trained on a fixture, with its MLflow run (model logged); shared by the
    inference and serving tests (copy its model directory before changing it)."""
    from nerlab.training.run import train

    root = tmp_path_factory.mktemp("trained")
    corpus = root / "corpus"
    corpus.mkdir()
    write_conll(corpus / "train.txt", make_sentences(150, seed=1))
    write_conll(corpus / "valid.txt", make_sentences(30, seed=2))
    write_conll(corpus / "test.txt", make_sentences(30, seed=3))
    # mean pooling, as the model the expectations of the Tagger tests were written for (the
    # default's attention pooling is trained, tagged and exported in test_documents.py)
    cfg = compose_cfg(
        root,
        corpus,
        "trainer.max_epochs=12",
        "optimizer.lr=0.02",
        "model.dropout=0.2",
        "model.document_pooling=mean",
    )
    summary = train(cfg)
    return {"root": root, "corpus": corpus, **summary}
