"""Documents: -DOCSTART- boundaries through reading, batching, the document memory and tagging."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PERSONS, PLACES, compose_cfg, make_sentences

from nerlab import Tagger
from nerlab.data.batching import DocumentBatchSampler, make_batch, to_tensors
from nerlab.data.conll import document_ids, read_conll
from nerlab.data.encoding import FormTable, encode_split
from nerlab.data.vocab import CharVocab, WordVocab
from nerlab.errors import NerlabError
from nerlab.models.bilstm_crf import BiLSTMTagger, TaggerConfig, build_tagger

BIN = Path(sys.executable).parent


def write_documents(path: Path, documents, *, docstart: bool = True) -> Path:
    lines = []
    for sentences in documents:
        if docstart:
            lines += ["-DOCSTART- -X- -X- O", ""]
        for tokens, tags in sentences:
            lines += [f"{t} NN B-NP {g}" for t, g in zip(tokens, tags, strict=True)] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_document_boundaries_survive_reading(tmp_path):
    docs = [make_sentences(2, seed=1), make_sentences(3, seed=2), make_sentences(1, seed=3)]
    with_docstart = read_conll(write_documents(tmp_path / "a.txt", docs))
    assert [s.doc for s in with_docstart] == [0, 0, 1, 1, 1, 2]
    assert document_ids(with_docstart) == [0, 0, 1, 1, 1, 2]
    # sentences before the first -DOCSTART- are a document of their own
    head = tmp_path / "b.txt"
    head.write_text("Paris B-LOC\n\n" + (tmp_path / "a.txt").read_text())
    assert document_ids(read_conll(head)) == [0, 1, 1, 2, 2, 2, 3]
    plain = read_conll(write_documents(tmp_path / "c.txt", docs, docstart=False))
    assert [s.doc for s in plain] == [None] * 6
    assert document_ids(plain) == [0, 1, 2, 3, 4, 5]  # auto: each sentence alone
    assert document_ids(plain, "file") == [0] * 6
    assert document_ids(plain, 4) == [0, 0, 0, 0, 1, 1]
    assert document_ids(plain, "2") == [0, 0, 1, 1, 2, 2]
    with pytest.raises(NerlabError, match="data.documents must be auto, docstart"):
        document_ids(plain, 0)


def _table_and_split(sentences, docs):
    words = WordVocab.build([t for t, _ in sentences])
    table = FormTable(words, CharVocab.build(w for t, _ in sentences for w in t))
    split = encode_split([(t, ()) for t, _ in sentences], table, None, docs=docs)
    table.freeze()
    return table, split


def test_memory_groups_join_mentions_of_one_document_only():
    sentences = [
        (["Jordan", "scored", "."], []),
        (["JORDAN", "and", "jordan", "Paris"], []),
        (["Jordan", "in", "Paris"], []),
        (["Paris", "again"], []),
    ]
    table, split = _table_and_split(sentences, docs=[0, 0, 1, 1])
    groups = make_batch(split, table, np.arange(4), memory=True)["memory_group"]
    jordan, paris = groups[0, 0], groups[2, 2]
    assert jordan >= 0 and paris >= 0 and jordan != paris
    assert groups[1, 0] == jordan  # upper case joins; lower case is not a name candidate
    assert groups[1, 2] == -1 and groups[0, 1] == -1
    assert groups[2, 0] == -1  # the only "Jordan" of document 1: no other mention
    assert groups[1, 3] == -1  # "Paris" once in document 0
    assert groups[3, 0] == paris  # the two of document 1
    assert groups[1, 3] != groups[3, 0]  # never across documents


def test_document_batches_hold_whole_documents_and_every_sentence_once():
    docs = np.repeat(np.arange(10), [1, 5, 2, 9, 3, 3, 1, 12, 4, 2])
    # documents of short sentences (tables of results) and of long ones (news prose)
    scale = np.array([2, 30, 3, 25, 2, 35, 4, 20, 3, 30])[docs]
    lengths = scale + np.random.default_rng(0).integers(0, 5, len(docs))
    for shuffle, by_length in ((False, None), (True, None), (True, lengths)):
        sampler = DocumentBatchSampler(docs, 8, shuffle=shuffle, seed=3, lengths=by_length)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(i for b in batches for i in b) == list(range(len(docs)))
        for batch in batches:
            members = set(docs[batch].tolist())
            assert all(
                np.count_nonzero(docs == d) == np.isin(batch, np.flatnonzero(docs == d)).sum()
                for d in members
            )
            assert len(batch) <= 8 or len(members) == 1  # only a long document fills one alone
    first = list(DocumentBatchSampler(docs, 8, shuffle=True, seed=3))
    sampler = DocumentBatchSampler(docs, 8, shuffle=True, seed=3)
    for epoch in range(1, 6):  # a new order, never another number of batches
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert batches != first and len(batches) == len(first) == len(sampler)
    ranks = [list(DocumentBatchSampler(docs, 8, num_replicas=2, rank=r)) for r in (0, 1)]
    assert sorted(i for r in ranks for b in r for i in b) == list(range(len(docs)))
    # packed by their longest sentence: fewer BiLSTM steps (the sum of each batch's longest
    # sentence) than the random packing of the same seed
    packed = DocumentBatchSampler(docs, 8, shuffle=True, seed=3, lengths=lengths).batches
    steps = sum(int(lengths[b].max()) for b in packed)
    assert steps < sum(int(lengths[b].max()) for b in first)
    longest = [int(lengths[b].max()) for b in packed]
    assert longest == sorted(longest)  # packed in order, before the batches are shuffled


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"document_pooling": "attention"},
        {"document_encoder_dims": 5},
        {"document_encoder_dims": 5, "document_context": True},
    ],
    ids=["mean", "attention", "second-encoder", "context"],
)
def test_a_sentences_scores_do_not_depend_on_padding_or_other_documents(variant):
    torch.manual_seed(0)
    rng = random.Random(0)
    doc_a = [[rng.choice(PERSONS + PLACES) for _ in range(n)] + ["."] for n in (3, 5)]
    doc_b = [[rng.choice(PERSONS) for _ in range(n)] for n in (11, 2)]
    sentences = [(t, ()) for t in doc_a + doc_b]
    table, split = _table_and_split(sentences, docs=[0, 0, 1, 1])
    config = TaggerConfig(
        num_words=len(table.words),
        num_chars=len(table.chars),
        num_tags=5,
        word_embedding_dims=8,
        character_embedding_dims=4,
        char_features_dims=4,
        entity_tagger_lstm_dims=6,
        document_memory=True,
        **variant,
    )
    net = BiLSTMTagger(config).eval()
    with torch.no_grad():
        alone = net(to_tensors(make_batch(split, table, np.array([0, 1]), memory=True)))
        mixed = net(to_tensors(make_batch(split, table, np.array([2, 0, 3, 1]), memory=True)))
        no_memory = net(to_tensors(make_batch(split, table, np.array([0]), memory=True)))
    for row_alone, row_mixed, n in ((0, 1, 4), (1, 3, 6)):
        assert torch.allclose(alone[row_alone, :n], mixed[row_mixed, :n], atol=1e-6)
    # the memory matters: the first sentence read alone (no other mentions) scores differently
    assert not torch.allclose(no_memory[0, :4], alone[0, :4], atol=1e-4)


def test_mention_attention_pools_only_the_other_mentions_of_a_group():
    from nerlab.models.document_memory import MentionAttention, mean_of_mentions

    torch.manual_seed(0)
    h = torch.randn(3, 7, 10)
    groups = torch.full((3, 7), -1)
    groups[0, 1] = groups[1, 4] = groups[2, 0] = 0  # three mentions of one word
    groups[0, 5] = groups[2, 6] = 1  # two of another
    attention = MentionAttention(10, 4, chunk=2)
    with torch.no_grad():
        attention.key.weight.zero_()  # equal scores: attention is the mean
        pooled, flag = attention(h, groups)
        mean, mean_flag = mean_of_mentions(h, groups)
        assert torch.allclose(pooled, mean, atol=1e-6) and torch.equal(flag, mean_flag)
        assert torch.allclose(pooled[0, 5], h[2, 6]) and torch.allclose(pooled[2, 6], h[0, 5])
        assert pooled[groups < 0].abs().max() == 0 and flag.sum() == 5
        attention.key.weight.normal_()  # learned scores: a convex mix of the others only
        pooled, _ = attention(h, groups)  # two query rows at a time
        assert torch.allclose(pooled[0, 5], h[2, 6])
        others = torch.stack([h[1, 4], h[2, 0]])
        weights = torch.linalg.lstsq(others.T, pooled[0, 1][:, None]).solution.squeeze(1)
        assert torch.allclose(weights.sum(), torch.tensor(1.0), atol=1e-4)
        assert bool((weights > 0).all())
        attention.chunk = 2048  # all rows at once: the same
        assert torch.allclose(attention(h, groups)[0], pooled, atol=1e-6)
        exported, exported_flag = attention.exportable(h, groups)  # what make export traces
        assert torch.allclose(exported, pooled, atol=1e-6) and torch.equal(exported_flag, flag)
        assert exported[groups < 0].abs().max() == 0


def test_the_exported_poolings_give_torchs_sums_on_every_onnxruntime_run(tmp_path):
    """The memory's sums, exported, on onnxruntime's default threads: every run gives torch's
    result. Many positions add into few groups, as in a long document; written with
    ``index_add`` (ONNX ScatterND), onnxruntime's threads lost updates and runs differed."""
    import onnx
    import onnxruntime as ort

    from nerlab.models.document_memory import mean_of_mentions, mean_of_other_sentences

    class Poolings(torch.nn.Module):
        def forward(self, h, groups, mask, rows):
            mentions, _ = mean_of_mentions(h, groups)
            sentences, _ = mean_of_other_sentences(h, mask, rows)
            return mentions, sentences

    generator = torch.Generator().manual_seed(0)
    batch, length, dim = 64, 160, 64
    h = torch.randn(batch, length, dim, generator=generator)
    groups = torch.randint(-1, 12, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.bool)
    rows = torch.arange(batch) // 32  # two documents
    path = tmp_path / "poolings.onnx"
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("length")}
    torch.onnx.export(
        Poolings(),
        (h, groups, mask, rows),
        str(path),
        dynamo=True,
        dynamic_shapes=(
            {**dims, 2: torch.export.Dim.STATIC},
            dims,
            dims,
            {0: dims[0]},
        ),
    )
    assert "ScatterND" not in {node.op_type for node in onnx.load(str(path)).graph.node}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"h": h.numpy(), "groups": groups.numpy(), "mask": mask.numpy(), "rows": rows.numpy()}
    expected = [t.numpy() for t in Poolings()(h, groups, mask, rows)]
    for _ in range(8):
        for got, want in zip(session.run(None, feed), expected, strict=True):
            assert np.abs(got - want).max() < 1e-5


def export(model_dir) -> None:
    """``make export``'s work on ``model_dir``, in this process (after other exports: each keeps
    the length dynamic); the ONNX graph's emissions must match torch's."""
    from nerlab.inference.export import export_onnx

    assert export_onnx(model_dir)["onnx"]["max_difference"] < 1e-4


@pytest.fixture(scope="module")
def memory_model(tmp_path_factory):
    from nerlab.training.run import train

    root = tmp_path_factory.mktemp("memory")
    corpus = root / "corpus"
    corpus.mkdir()
    for split, seed, n in (("train", 1, 40), ("valid", 2, 8), ("test", 3, 8)):
        rng = random.Random(seed)
        docs = [make_sentences(rng.randint(2, 6), seed=seed * 100 + i) for i in range(n)]
        write_documents(corpus / f"{split}.txt", docs)
    # the longest path through the network: attention pooling and the second encoder (the mean
    # pooling is checked above)
    cfg = compose_cfg(
        root,
        corpus,
        "model.document_memory=true",
        "model.document_pooling=attention",
        "model.document_encoder_dims=8",
        "trainer.max_epochs=6",
        "optimizer.lr=0.02",
    )
    summary = train(cfg)
    return {"root": root, "corpus": corpus, **summary}


def test_a_document_model_tags_documents_as_make_evaluate_scores_them(memory_model, tmp_path):
    model_dir, test_file = memory_model["model_dir"], memory_model["corpus"] / "test.txt"
    info = json.loads((Path(model_dir) / "model_info.json").read_text())
    assert info["model"]["document_memory"] is True and info["data"]["documents"] == "auto"
    result = subprocess.run(
        [
            str(BIN / "nerlab-evaluate"),
            f"model_dir={model_dir}",
            f"test_file={test_file}",
            f"predictions={tmp_path / 'pred.conll'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["f1"] == pytest.approx(memory_model["test_f1"], abs=1e-9)
    sentences = read_conll(test_file)
    tagger = Tagger.load(model_dir)
    assert tagger.uses_documents
    tags = tagger.tag([s.tokens for s in sentences], documents=document_ids(sentences))
    predicted = [s.tags for s in read_conll(tmp_path / "pred.conll", -1)]
    assert tags == predicted
    # a multi-sentence text is one document: its sentences are tagged together
    text = "Mary visited Paris today . Mary works for Acme Corp ."
    found = tagger.predict(text)
    assert all(text[e["start"] : e["end"]] == e["text"] for e in found)
    doc_tags = tagger.tag([text.split()[:5], text.split()[5:]], documents="one")
    assert [e["label"] for e in found] == [
        t[2:] for seq in doc_tags for t in seq if t.startswith("B-")
    ]
    # make predict on a column file reads its documents and keeps their -DOCSTART- lines
    out = tmp_path / "out.conll"
    result = subprocess.run(
        [
            str(BIN / "nerlab-predict"),
            f"model_dir={model_dir}",
            f"input={test_file}",
            "input_format=conll",
            f"output={out}",
            "format=conll",
            "chunk=3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [s.tags for s in read_conll(out, -1)] == tags
    assert out.read_text().count("-DOCSTART-") == 8
    # attention pooling exports too (its one-pass form), and the fp32 graph tags as torch does
    export(model_dir)
    token_lists, docs = [s.tokens for s in sentences], document_ids(sentences)
    onnx_tagger = Tagger.load(model_dir, backend="onnx")
    assert onnx_tagger.tag(token_lists, documents=docs) == tags


@pytest.fixture(scope="module")
def mean_memory_model(memory_model, tmp_path_factory):
    """The default's document mechanism (mean pooling and the second encoder), trained on the
    corpus of ``memory_model``."""
    from nerlab.training.run import train

    root = tmp_path_factory.mktemp("mean_memory")
    cfg = compose_cfg(
        root,
        memory_model["corpus"],
        "model.document_memory=true",
        "model.document_pooling=mean",
        "model.document_encoder_dims=8",
        "trainer.max_epochs=6",
        "optimizer.lr=0.02",
    )
    return {"corpus": memory_model["corpus"], **train(cfg)}


def test_an_exported_document_model_tags_as_torch_does(mean_memory_model, tmp_path):
    """``make export`` of a document model (its groups are an input of the graph, with dynamic
    batch and length): fp32 ONNX gives the torch tagger's tags on every token."""
    from nerlab.inference.export import export_onnx

    model_dir, test_file = mean_memory_model["model_dir"], mean_memory_model["corpus"] / "test.txt"
    written = export_onnx(model_dir, quantize="int8")
    assert written["onnx"]["max_difference"] < 1e-4
    sentences = read_conll(test_file)
    token_lists, docs = [s.tokens for s in sentences], document_ids(sentences)
    torch_tags = Tagger.load(model_dir).tag(token_lists, documents=docs)
    onnx_tagger = Tagger.load(model_dir, backend="onnx")
    assert onnx_tagger.uses_documents
    assert onnx_tagger.tag(token_lists, documents=docs) == torch_tags
    # each document batched alone (other batch shapes than the export's example) agrees too
    for doc in sorted(set(docs))[:3]:
        rows = [i for i, d in enumerate(docs) if d == doc]
        alone = onnx_tagger.tag([token_lists[i] for i in rows], documents="one")
        assert alone == [torch_tags[i] for i in rows]
    int8 = Tagger.load(model_dir, backend="onnx", quantize="int8")
    int8_tags = int8.tag(token_lists, documents=docs)
    agree = np.mean(
        [
            a == b
            for x, y in zip(int8_tags, torch_tags, strict=True)
            for a, b in zip(x, y, strict=True)
        ]
    )
    assert agree > 0.95


def test_the_document_context_reads_the_other_sentences_and_exports(mean_memory_model, tmp_path):
    """``model.document_context``: each token also reads the mean state of the other sentences
    of its document. The trained memory model with the context added (its new weights drawn
    with a fixed seed) is saved, exported and tagged by both backends alike."""
    from nerlab.inference.model_dir import load_model, save_model
    from nerlab.models.document_memory import mean_of_other_sentences

    h = torch.randn(4, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    context, flag = mean_of_other_sentences(h, mask.bool(), torch.tensor([0, 0, 0, 1]))
    assert torch.allclose(context[0, 1], torch.cat([h[1, :5], h[2, :2]]).mean(0), atol=1e-6)
    assert torch.allclose(context[2, 0], torch.cat([h[0, :3], h[1, :5]]).mean(0), atol=1e-6)
    assert context[0, 3:].abs().sum() == 0 and context[3].abs().sum() == 0  # padding; alone
    assert flag[:, 0, 0].tolist() == [1.0, 1.0, 1.0, 0.0]

    net, vocabs, info = load_model(mean_memory_model["model_dir"])
    torch.manual_seed(0)
    config = {**net.config.to_dict(), "document_context": True}
    with pytest.raises(NerlabError, match="document_context needs model.document_memory=true"):
        TaggerConfig.from_dict({**config, "document_memory": False})
    context_net = build_tagger(TaggerConfig.from_dict(config), info["tags"], info["tag_scheme"])
    kept = {k: v for k, v in net.state_dict().items() if k.split(".")[0] in KEPT_PARTS}
    assert not set(context_net.load_state_dict(kept, strict=False).unexpected_keys)
    model_dir = tmp_path / "context"
    save_model(model_dir, context_net, {**info, "model": context_net.config.to_dict()})
    export(model_dir)
    sentences = read_conll(mean_memory_model["corpus"] / "test.txt")
    token_lists, docs = [s.tokens for s in sentences], document_ids(sentences)
    torch_tagger = Tagger.load(model_dir)
    torch_tags = torch_tagger.tag(token_lists, documents=docs)
    assert Tagger.load(model_dir, backend="onnx").tag(token_lists, documents=docs) == torch_tags
    # the other sentences matter: the same batch with each sentence told it is alone in its
    # document (the mention groups unchanged) scores differently
    first = [i for i, d in enumerate(docs) if d == docs[0]]
    assert len(first) > 1
    batch = _batch(torch_tagger, [token_lists[i] for i in first])
    with torch.no_grad():
        context_net.eval()
        together = context_net(batch)
        alone = context_net({**batch, "document_row": torch.arange(len(first))})
    assert not torch.allclose(together, alone, atol=1e-5)


#: the parts of a memory model that keep their shapes when the document context is added
KEPT_PARTS = ("words", "chars", "casing", "encoder", "crf")


def _batch(tagger, token_lists):
    """One document of ``token_lists`` as a tensor batch for ``tagger``'s network."""
    table = FormTable(tagger.vocabs.words, tagger.vocabs.chars)
    docs = np.zeros(len(token_lists), dtype=np.int64)
    split = encode_split([(t, ()) for t in token_lists], table, None, docs=docs)
    table.freeze()
    return to_tensors(make_batch(split, table, np.arange(len(token_lists)), memory=True))


def test_mention_consistency_counts_repeated_names_labelled_differently():
    from nerlab.analysis.error_analysis import mention_consistency

    tokens = [["Jordan", "scored", "for", "Chicago"], ["Jordan", "said", "so"], ["Jordan", "won"]]
    tags = [["B-ORG", "O", "O", "B-LOC"], ["B-LOC", "O", "O"], ["B-PER", "O"]]
    # documents 0 and 0 share "Jordan" (ORG, LOC: inconsistent); document 1 has it once
    assert mention_consistency(tokens, tags, [0, 0, 1]) == {
        "repeated": 1,
        "inconsistent": 1,
        "rate": 1.0,
    }
    same = [["B-PER", "O", "O", "B-LOC"], ["B-PER", "O", "O"], ["B-PER", "O"]]
    assert mention_consistency(tokens, same, [0, 0, 0]) == {
        "repeated": 1,
        "inconsistent": 0,
        "rate": 0.0,
    }


def test_a_document_far_larger_than_a_batch_is_a_warning(tmp_path, caplog):
    """One -DOCSTART- at the top of a file makes it one document: a document model would train
    on one batch an epoch, so the DataModule says so and how to mend it."""
    from nerlab.data.datamodule import NERDataModule

    docs = [make_sentences(60, seed=1)]
    for name in ("train", "valid", "test"):
        write_documents(tmp_path / f"{name}.txt", docs)
    dm = NERDataModule(dir=str(tmp_path), batch_size=8, batch_by_document=True, download=False)
    dm.setup("fit")
    with caplog.at_level("WARNING"):
        dm.train_dataloader()
        dm.train_dataloader()
    warned = [r.message for r in caplog.records if "trains as one batch" in r.message]
    assert len(warned) == 1 and "a document of 60 sentences" in warned[0]
    assert "data.documents=N" in warned[0]


def test_evaluation_batches_on_several_replicas_cover_every_document_once():
    """Each rank evaluates every num_replicas-th document: a rank has a batch while there is a
    document per rank (a small validation split under DDP), and nothing repeats."""
    docs = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    ranks = [list(DocumentBatchSampler(docs, 256, num_replicas=2, rank=r)) for r in (0, 1)]
    assert all(len(batches) == 1 for batches in ranks)
    seen = sorted(i for batches in ranks for batch in batches for i in batch)
    assert seen == list(range(len(docs)))
    assert sorted(ranks[0][0]) == [0, 1, 5] and sorted(ranks[1][0]) == [2, 3, 4, 6, 7]
