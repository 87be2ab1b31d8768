"""Continuing from a trained model (``init_from``): vocabularies extended with their ids kept, a
new entity type added as new rows of the projection and the CRF, the old weights kept, and
rehearsal of the old data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg, make_sentences, write_conll

from nerlab import Tagger
from nerlab.errors import NerlabError


def _without(sentences, entity_type: str):
    return [
        (tokens, ["O" if t.endswith(f"-{entity_type}") else t for t in tags])
        for tokens, tags in sentences
    ]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A model that never saw ORG (its data have ORG tagged O)."""
    from nerlab.training.run import train

    root = tmp_path_factory.mktemp("base")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, n, seed in (("train", 120, 1), ("valid", 30, 2), ("test", 30, 3)):
        write_conll(corpus / f"{name}.txt", _without(make_sentences(n, seed=seed), "ORG"))
    cfg = compose_cfg(root, corpus, "trainer.max_epochs=8", "optimizer.lr=0.02")
    return {"root": root, "corpus": corpus, **train(cfg)}


@pytest.fixture(scope="module")
def new_corpus(tmp_path_factory):
    """New data with ORG labelled, and words the base model never saw."""
    corpus = tmp_path_factory.mktemp("new")
    for name, n, seed in (("train", 100, 11), ("valid", 30, 12), ("test", 30, 13)):
        sentences = make_sentences(n, seed=seed)
        sentences += [
            (["Zara", "joined", "Globex", "Inc", "."], ["B-PER", "O", "B-ORG", "I-ORG", "O"])
        ]
        write_conll(corpus / f"{name}.txt", sentences)
    return corpus


def test_continuing_extends_the_vocabularies_and_keeps_the_old_weights(base, new_corpus, tmp_path):
    from nerlab.inference.model_dir import load_model
    from nerlab.training.run import build_data_and_model

    old_net, old_vocabs, _ = load_model(base["model_dir"])
    assert "B-ORG" not in old_vocabs.tags.tags
    cfg = compose_cfg(tmp_path, new_corpus, f"init_from={base['model_dir']}")
    datamodule, module, _ = build_data_and_model(cfg)
    vocabs = datamodule.vocabs
    for old, new in (
        (old_vocabs.words.words, vocabs.words.words),
        (old_vocabs.chars.chars, vocabs.chars.chars),
        (old_vocabs.tags.tags, vocabs.tags.tags),
    ):
        assert new[: len(old)] == old and len(new) > len(old)
    assert {"B-ORG", "E-ORG"} <= set(vocabs.tags.tags[len(old_vocabs.tags) :])  # two-word ORGs
    assert "Zara" in vocabs.words.index and "Zara" not in old_vocabs.words.index
    new_state, old_state = module.net.state_dict(), old_net.state_dict()
    for name, value in old_net.named_parameters():
        rows = tuple(slice(0, n) for n in value.shape)
        assert torch.equal(new_state[name][rows], old_state[name]), name
    k = len(old_vocabs.tags)
    assert module.net.projection.weight.shape[0] == len(vocabs.tags) > k
    assert module.net.crf.transitions.shape == (len(vocabs.tags), len(vocabs.tags))
    # the architecture is the base model's, whatever the run's model group says
    assert module.net.config.entity_tagger_lstm_dims == old_net.config.entity_tagger_lstm_dims


def test_a_continued_model_learns_the_new_type_and_keeps_the_old(base, new_corpus, tmp_path):
    from nerlab.training.run import train

    cfg = compose_cfg(
        tmp_path,
        new_corpus,
        f"init_from={base['model_dir']}",
        "trainer.max_epochs=6",
        "optimizer.lr=0.02",
        # the trained weights: after 6 epochs of 101 sentences the moving average still lags
        # the new type (ORG F1 0.70 with it, against the 0.8 asked below)
        "averaging=none",
        f"data.rehearse_file={base['corpus'] / 'train.txt'}",
        "data.rehearse_sentences=40",
    )
    summary = train(cfg)
    info = json.loads((Path(summary["model_dir"]) / "model_info.json").read_text())
    assert info["continued_from"] == str(base["model_dir"])
    assert info["entity_types"] == ["LOC", "ORG", "PER"]
    per_type = info["scores"]["test"]["per_type"]
    assert per_type["ORG"]["f1"] > 0.8 and per_type["PER"]["f1"] > 0.8
    tagger = Tagger.load(summary["model_dir"])
    assert tagger.tag([["Zara", "joined", "Globex", "Inc", "."]])[0][2:4] == ["B-ORG", "I-ORG"]


def test_rehearsal_adds_old_sentences_and_bad_bases_are_one_line(base, new_corpus, tmp_path):
    from nerlab.training.run import build_data_and_model

    cfg = compose_cfg(
        tmp_path,
        new_corpus,
        f"init_from={base['model_dir']}",
        f"data.rehearse_file={base['corpus'] / 'train.txt'}",
        "data.rehearse_sentences=25",
    )
    datamodule, _, _ = build_data_and_model(cfg)
    assert len(datamodule.sentences["train"]) == 101 + 25
    with pytest.raises(NerlabError, match="model_info.json: missing"):
        build_data_and_model(compose_cfg(tmp_path, new_corpus, f"init_from={tmp_path}"))
    with pytest.raises(NerlabError, match="the model continued from tags IOBES"):
        build_data_and_model(
            compose_cfg(
                tmp_path, new_corpus, f"init_from={base['model_dir']}", "data.tag_scheme=bio"
            )
        )
    with pytest.raises(NerlabError, match="data.rehearse_file=.*nope.txt: no such file"):
        build_data_and_model(
            compose_cfg(
                tmp_path,
                new_corpus,
                f"init_from={base['model_dir']}",
                f"data.rehearse_file={tmp_path / 'nope.txt'}",
                "data.rehearse_sentences=5",
            )
        )
