"""The network's parts without a Trainer, and the Trainer cases that run on CPU."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nerlab.data.datamodule import NERDataModule
from nerlab.data.tag_schemes import allowed_transitions
from nerlab.data.vectors import load_pretrained
from nerlab.data.vocab import WordVocab
from nerlab.errors import ConfigError
from nerlab.models.bilstm_crf import BiLSTMTagger, TaggerConfig
from nerlab.models.char_encoder import CharCNN, CharLSTM
from nerlab.models.embeddings import WordEmbedding

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("encoder", [CharCNN(30, 8, 6, (2, 3)), CharLSTM(30, 8, 5)])
def test_char_encoders_ignore_padding(encoder):
    encoder.eval()
    word = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 0, 0, 0], [7, 0, 0, 0, 0, 0]])
    a = encoder(word, torch.tensor([3]))
    b = encoder(padded, torch.tensor([3, 1]))
    assert a.shape == (1, encoder.output_dim) and b.shape == (2, encoder.output_dim)
    assert torch.allclose(a[0], b[0], atol=1e-6)


def write_vectors(folder: Path) -> dict[str, Path]:
    vectors = {"the": [0.1, 0.2, 0.3], "paris": [1.0, 0.0, -1.0], "0000": [0.5, 0.5, 0.5]}
    glove = folder / "glove.txt"
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items()))
    w2v = folder / "w2v.vec"
    w2v.write_text(f"{len(vectors)} 3\n" + glove.read_text())
    binary = folder / "w2v.bin"
    with binary.open("wb") as fh:
        fh.write(f"{len(vectors)} 3\n".encode())
        for w, v in vectors.items():
            fh.write(w.encode() + b" " + struct.pack("<3f", *v) + b"\n")
    return {"glove": glove, "word2vec": w2v, "binary": binary}


@pytest.mark.parametrize("kind", ["glove", "word2vec", "binary"])
def test_pretrained_formats_and_lample_lookup(tmp_path, kind):
    path = write_vectors(tmp_path)[kind]
    vectors = load_pretrained(str(path))
    assert vectors.dim == 3 and len(vectors.words) == 3
    vocab = WordVocab.build([["Paris", "1996", "unseen", "the"]], zero_digits=False)
    emb = WordEmbedding(len(vocab), 3)
    assert emb.load_pretrained(vocab, vectors) == 3  # exact "the", lowercase "Paris", zeroed "1996"
    weight = emb.embedding.weight.detach()
    assert torch.allclose(weight[vocab.index["Paris"]], torch.tensor([1.0, 0.0, -1.0]))
    assert torch.allclose(weight[vocab.index["1996"]], torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ConfigError, match="have 3 dimensions but model.word_embedding_dims is 4"):
        WordEmbedding(len(vocab), 4).load_pretrained(vocab, vectors)


def test_packaged_glove_vectors_load_by_name():
    vectors = load_pretrained("glove-6b-50d")
    assert vectors.matrix.shape == (400000, 50)
    assert vectors.row("London") == vectors.index["london"]
    with pytest.raises(ConfigError, match="no such file and not a packaged name"):
        load_pretrained("glove-does-not-exist")


def tiny_batch(corpus: Path, **model):
    dm = NERDataModule(dir=str(corpus), batch_size=16)
    dm.setup()
    config = TaggerConfig(
        num_words=len(dm.vocabs.words),
        num_chars=len(dm.vocabs.chars),
        num_tags=len(dm.vocabs.tags),
        word_embedding_dims=8,
        entity_tagger_lstm_dims=8,
        character_embedding_dims=4,
        char_features_dims=4,
        char_features_lstm_dims=4,
        **model,
    )
    allowed = allowed_transitions("iobes", dm.vocabs.tags.tags)
    return BiLSTMTagger(config, allowed), next(iter(dm.train_dataloader()))


@pytest.mark.parametrize(
    "settings",
    [
        {"char": "cnn"},
        {"char": "lstm", "casing_dims": 4, "lstm_layers": 2, "variational_dropout": True},
        {"char": "none", "crf": False},
    ],
)
def test_gradients_reach_every_parameter(tiny_corpus, settings):
    torch.manual_seed(0)
    net, batch = tiny_batch(tiny_corpus, **settings)
    net.train()
    emissions = net(batch)
    assert emissions.shape == (*batch["mask"].shape, net.config.num_tags)
    loss = net.loss(emissions, batch["tags"], batch["mask"])
    loss.backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    tags = net.decode(emissions.detach(), batch["mask"])
    assert tags.shape == batch["mask"].shape and (tags[~batch["mask"]] == 0).all()


def test_word_and_char_dropout_act_in_training_only(tiny_corpus):
    torch.manual_seed(0)
    net, batch = tiny_batch(tiny_corpus, word_dropout=0.5, char_dropout=0.5, dropout=0.0)
    words = net.words(batch["word_ids"])
    mask = batch["mask"]
    net.train()
    features = net.features(batch)[..., : net.config.word_embedding_dims]
    zeroed = (features == 0).all(-1) & mask & (words != 0).any(-1)
    kept = torch.isclose(features, words).all(-1) & mask
    assert (zeroed | kept)[mask].all()  # a token's whole word vector goes, unscaled
    share = zeroed.sum().item() / mask.sum().item()
    assert 0.3 < share < 0.7, share
    assert net.chars.dropout.p == 0.5
    net.eval()
    assert torch.equal(net.features(batch)[..., : net.config.word_embedding_dims], words)
    with pytest.raises(ConfigError, match=r"model.word_dropout must be in \[0, 1\), found 1.0"):
        TaggerConfig(num_words=5, num_chars=5, num_tags=3, word_dropout=1.0)


@pytest.mark.parametrize(
    ("p", "bits"), [(0.5, 8), (0.25, 8), (0.05, 32), (7 / 65536, 16), (0.3, 32)]
)
def test_dropout_masks_keep_each_element_with_probability_1_minus_p(p, bits, monkeypatch):
    from nerlab.models import dropout

    drawn = []
    randint, rand = torch.randint, torch.rand
    monkeypatch.setattr(torch, "randint", lambda *a, **k: drawn.append(a[2]) or randint(*a, **k))
    monkeypatch.setattr(torch, "rand", lambda *a, **k: drawn.append(a[0]) or rand(*a, **k))
    torch.manual_seed(0)
    shape = (500, 7, 131)  # 458,500 elements: not a multiple of 8
    keep = dropout.keep_mask(shape, p)
    assert keep.shape == shape and keep.dtype == torch.bool
    # 8 or 16 bits an element come 64 at a time; other p a float each
    numel = 500 * 7 * 131
    assert drawn == [(-(-numel * bits // 64),) if bits < 32 else shape]
    dropped = 1 - keep.float().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / numel) ** 0.5 + 1e-6, dropped
    # every bit position of the 64-bit draws is used alike (no byte is stuck)
    if bits == 8:
        per_byte = 1 - keep.flatten()[: numel // 8 * 8].view(-1, 8).float().mean(0)
        assert (per_byte - p).abs().max() < 0.01, per_byte
    torch.manual_seed(0)
    assert torch.equal(dropout.keep_mask(shape, p), keep)  # the seed decides the mask


def test_sequence_dropout_scales_what_it_keeps():
    from nerlab.models.dropout import SequenceDropout

    torch.manual_seed(1)
    x = torch.rand(64, 30, 40) + 0.5
    layer = SequenceDropout(0.5)
    y = layer(x)
    assert set(torch.unique(torch.isclose(y, 2 * x) | (y == 0)).tolist()) == {True}
    assert 0.45 < (y == 0).float().mean().item() < 0.55
    locked = SequenceDropout(0.5, variational=True)(x)
    assert ((locked == 0) == (locked[:, :1] == 0)).all()  # one mask per sentence
    layer.eval()
    assert torch.equal(layer(x), x)


def test_constrained_decoding_yields_well_formed_iobes(tiny_corpus):
    from nerlab.data.tag_schemes import validate

    net, batch = tiny_batch(tiny_corpus)
    net.eval()
    with torch.no_grad():
        emissions = torch.randn(*batch["mask"].shape, net.config.num_tags) * 5
        tags = net.decode(emissions, batch["mask"])
    dm = NERDataModule(dir=str(tiny_corpus))
    dm.setup()
    names = dm.vocabs.tags.tags
    for row, length in zip(tags.tolist(), batch["mask"].sum(1).tolist(), strict=True):
        assert validate([names[i] for i in row[:length]], "iobes") is None


def test_invalid_sizes_fail_at_construction():
    with pytest.raises(
        ConfigError, match="model.entity_tagger_lstm_dims must be positive, found 0"
    ):
        TaggerConfig(num_words=5, num_chars=5, num_tags=3, entity_tagger_lstm_dims=0)
    with pytest.raises(ConfigError, match="model.char must be one of cnn, lstm, none, found 'gru'"):
        TaggerConfig(num_words=5, num_chars=5, num_tags=3, char="gru")
    with pytest.raises(ConfigError, match="model.char_features_dims must be positive, found 0"):
        TaggerConfig(num_words=5, num_chars=5, num_tags=3, char="cnn", char_features_dims=0)
    # the char LSTM's own size is only checked when the char LSTM is used
    TaggerConfig(num_words=5, num_chars=5, num_tags=3, char="cnn", char_features_lstm_dims=0)


def cli(tmp_path: Path, corpus: Path, *overrides: str) -> dict:
    env = {**os.environ, "NERLAB_ROOT": str(tmp_path)}
    result = subprocess.run(
        [
            str(BIN / "nerlab-train"),
            "data=bio",
            f"data.dir={corpus}",
            "vectors=none",
            "model.word_embedding_dims=16",
            "model.entity_tagger_lstm_dims=16",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "data.eval_batch_size=8",
            *overrides,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_bf16_mixed_precision_trains_on_cpu(tmp_path, tiny_corpus):
    summary = cli(
        tmp_path,
        tiny_corpus,
        "trainer.precision=bf16-mixed",
        "trainer.max_epochs=6",
        "optimizer.lr=0.02",
        "data.batch_size=8",
    )
    assert summary["test_f1"] is not None and np.isfinite(summary["test_f1"])
    assert summary["test_f1"] > 0.5  # it learned, so the loss stayed finite


BF16_INFERENCE = """
import json, torch
from nerlab.models.encoder import BiLSTMEncoder, cpu_bf16_lstm_works
torch.manual_seed(0)
encoder = BiLSTMEncoder(6, 5, 2).eval()
x, mask = torch.randn(3, 7, 6), torch.arange(7)[None, :] < torch.tensor([[7], [4], [1]])
with torch.no_grad():
    fp32 = encoder(x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = encoder(x, mask)
print(json.dumps({"works": cpu_bf16_lstm_works(), "dtype": str(bf16.dtype),
                  "diff": (bf16.float() - fp32)[mask].abs().max().item()}))
"""


def test_bf16_inference_runs_where_onednn_has_no_bf16_lstm():
    # AVX-512 without AVX512_BF16 (CI's CPU once): PyTorch takes the bf16 oneDNN LSTM, which
    # oneDNN cannot build there. Capping oneDNN's ISA makes this CPU behave like that one.
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    result = subprocess.run(
        [sys.executable, "-c", BF16_INFERENCE], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout)
    if outcome["works"]:  # a CPU whose oneDNN builds it anyway: bf16 all the way
        assert outcome["dtype"] == "torch.bfloat16" and outcome["diff"] < 0.05
    else:  # the fallback: the LSTMs ran in fp32, exactly as without autocast
        assert outcome["dtype"] == "torch.float32" and outcome["diff"] == 0.0


@pytest.mark.slow  # the default suite keeps the faster launcher/DDP tests
def test_two_process_ddp_scores_exactly_what_one_process_scores(tmp_path, tiny_corpus):
    from nerlab import Tagger
    from nerlab.data import read_conll
    from nerlab.training.metrics import score_tagger

    summary = cli(tmp_path, tiny_corpus, "trainer=ddp", "trainer.devices=2", "trainer.max_epochs=2")
    tagger = Tagger.load(summary["model_dir"], batch_size=8)
    info = tagger.info
    sentences = read_conll(tiny_corpus / "test.txt")
    scores, _ = score_tagger(tagger, sentences)
    assert summary["test_f1"] == pytest.approx(scores["f1"], abs=1e-12)
    support = sum(s["support"] for s in info["scores"]["test"]["per_type"].values())
    assert support == sum(t.startswith("B-") for s in sentences for t in s.tags)


@pytest.mark.parametrize("layers", [1, 2])
def test_encoder_equals_packed_bidirectional_lstm(layers):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from nerlab.models.encoder import BiLSTMEncoder

    torch.manual_seed(0)
    encoder = BiLSTMEncoder(6, 5, layers).eval()
    reference = torch.nn.LSTM(6, 5, num_layers=layers, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for layer in range(layers):
            for suffix, lstm in (
                ("", encoder.forward_layers[layer]),
                ("_reverse", encoder.backward_layers[layer]),
            ):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(reference, f"{name}_l{layer}{suffix}").copy_(
                        getattr(lstm, f"{name}_l0")
                    )
    x = torch.randn(4, 7, 6)
    lengths = torch.tensor([7, 3, 5, 1])
    mask = torch.arange(7)[None, :] < lengths[:, None]
    ours = encoder(x, mask)
    packed, _ = reference(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    theirs, _ = pad_packed_sequence(packed, batch_first=True, total_length=7)
    assert torch.allclose(ours[mask], theirs[mask], atol=1e-6)


def test_vectors_that_do_not_fit_the_words_are_warned_about(tmp_path, caplog):
    from conftest import compose_cfg, make_sentences, write_conll

    from nerlab.training.run import build_data_and_model

    sentences = make_sentences(40, seed=3)
    words = sorted({t.lower() for tokens, _ in sentences for t in tokens})
    glove = tmp_path / "vectors.txt"
    glove.write_text("".join(f"{w} 0.1 0.2 0.3\n" for w in words))
    found = {}
    for name, prefix in (("plain", ""), ("prefixed", "en:")):
        corpus = tmp_path / name
        corpus.mkdir()
        tagged = [([prefix + t for t in tokens], tags) for tokens, tags in sentences]
        for split in ("train", "valid", "test"):
            write_conll(corpus / f"{split}.txt", tagged)
        cfg = compose_cfg(
            tmp_path / f"run-{name}",
            corpus,
            f"vectors.name={glove}",
            "model.word_embedding_dims=3",
        )
        caplog.clear()
        with caplog.at_level("WARNING", logger="nerlab.training.run"):
            datamodule, _, _ = build_data_and_model(cfg)
        found[name] = (datamodule.stats["vector_coverage"], [r.message for r in caplog.records])
    assert found["plain"] == (1.0, [])
    coverage, messages = found["prefixed"]
    assert coverage == 0.0 and len(messages) == 1
    assert messages[0].startswith(f"only 0 of {len(words)} distinct training words (0.0%) have")
    assert "the tokens carry a prefix (en:)" in messages[0]
    assert f"{len(words)} of {len(words)} would have a vector without it" in messages[0]
