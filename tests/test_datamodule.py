"""NERDataModule: parse once, vocabularies from train, batches, no truncation at evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_sentences, write_conll

from nerlab.data.batching import make_batch
from nerlab.data.datamodule import NERDataModule
from nerlab.data.vocab import PAD_ID, UNK_ID
from nerlab.errors import NerlabError


def test_setup_builds_vocabularies_from_train_only(tiny_corpus):
    test = tiny_corpus / "test.txt"
    test.write_text(test.read_text() + "Zanzibar B-LOC\nqqq O\n")
    dm = NERDataModule(dir=str(tiny_corpus), tag_scheme="iobes", batch_size=8)
    dm.setup()
    assert "Zanzibar" not in dm.vocabs.words.index and "qqq" not in dm.vocabs.words.index
    assert dm.vocabs.tags.scheme == "iobes" and "S-LOC" in dm.vocabs.tags.tags
    assert dm.stats["train_sentences"] == 120 and dm.stats["test_sentences"] == 31
    assert dm.stats["test_oov_rate"] > 0
    assert dm.entity_types == ["LOC", "ORG", "PER"]
    # the gold kept for scoring is IOB2 whatever the training scheme
    assert dm.splits["test"].gold[-1] == ["B-LOC", "O"]


def test_batches_are_dynamically_padded_and_forms_map_back_to_tokens(tiny_corpus):
    dm = NERDataModule(dir=str(tiny_corpus), batch_size=16, singleton_unk_prob=0.0)
    dm.setup()
    split, table = dm.splits["train"], dm.table
    batch = next(iter(dm.train_dataloader()))
    lengths = batch["mask"].sum(1)
    assert batch["mask"].shape[1] == int(lengths.max())  # padded to the longest in the batch
    assert batch["mask"].dtype == torch.bool
    sentences = dm.sentences["train"]
    for row, idx in enumerate(batch["indices"].tolist()):
        tokens = sentences[idx].tokens
        n = len(tokens)
        assert int(lengths[row]) == n
        for j, token in enumerate(tokens):
            u = int(batch["form_index"][row, j])
            width = int(batch["char_lengths"][u])
            assert batch["char_ids"][u, :width].tolist() == dm.vocabs.chars.encode(token)
            assert int(batch["word_ids"][row, j]) == dm.vocabs.words.lookup(token)
        assert (batch["word_ids"][row, n:] == PAD_ID).all()
    # each distinct form of the batch appears once in char_ids
    assert batch["char_ids"].shape[0] == len(
        {t for i in batch["indices"].tolist() for t in sentences[i].tokens}
    )
    assert split is dm.splits["train"] and len(table) >= len(dm.vocabs.words) - 2


def test_singleton_words_are_replaced_by_unk_with_the_given_probability(tiny_corpus):
    train = tiny_corpus / "train.txt"
    train.write_text(
        train.read_text()
        + "".join(f"solo{chr(97 + i // 26)}{chr(97 + i % 26)} O\n\n" for i in range(400))
    )
    dm = NERDataModule(dir=str(tiny_corpus), singleton_unk_prob=0.5)
    dm.setup()
    split = dm.splits["train"]
    idx = np.arange(len(split) - 400, len(split))
    batch = make_batch(split, dm.table, idx, singleton_unk_prob=0.5, seed=1)
    unk = float((batch["word_ids"][:, 0] == UNK_ID).mean())
    assert 0.4 < unk < 0.6
    assert (make_batch(split, dm.table, idx)["word_ids"][:, 0] > UNK_ID).all()


def test_evaluation_never_truncates_and_restores_order(tmp_path):
    write_conll(tmp_path / "train.txt", make_sentences(50, seed=1))
    write_conll(tmp_path / "valid.txt", make_sentences(10, seed=2))
    long = [(["John"] + ["lives"] * 299, ["B-PER"] + ["O"] * 299)]
    write_conll(tmp_path / "test.txt", make_sentences(20, seed=3) + long)
    dm = NERDataModule(dir=str(tmp_path), sentence_length=5, word_length=3, eval_batch_size=4)
    dm.setup()
    assert max(dm.splits["train"].lengths) <= 5
    seen = []
    for batch in dm.test_dataloader():
        seen.extend(batch["indices"].tolist())
        lengths = batch["mask"].sum(1).tolist()
        if 20 in batch["indices"].tolist():
            assert max(lengths) == 300
        assert batch["char_ids"].shape[1] <= 3
    assert sorted(seen) == list(range(21))
    assert seen[0] == 20  # longest first


def test_without_a_validation_file_a_seeded_fraction_of_train_is_held_out(tiny_corpus):
    a = NERDataModule(dir=str(tiny_corpus), val_file=None, val_fraction=0.25, seed=7)
    b = NERDataModule(dir=str(tiny_corpus), val_file=None, val_fraction=0.25, seed=7)
    a.setup()
    b.setup()
    assert len(a.splits["val"]) == 30 and len(a.splits["train"]) == 90
    assert a.splits["val"].gold == b.splits["val"].gold
    held = {s.line for s in a.sentences["val"]}
    assert len(held) == 30 and not held & {s.line for s in a.sentences["train"]}
    c = NERDataModule(dir=str(tiny_corpus), val_file=None, val_fraction=0.25, seed=8)
    c.setup()
    assert {s.line for s in c.sentences["val"]} != held


def test_a_type_unseen_in_training_is_warned_about_and_scored(tiny_corpus, caplog):
    test = tiny_corpus / "test.txt"
    test.write_text(test.read_text() + "Gadget B-PRODUCT\n")
    dm = NERDataModule(dir=str(tiny_corpus))
    with caplog.at_level("WARNING"):
        dm.setup()
    assert "entity type PRODUCT never occurs in the training data" in caplog.text
    assert "PRODUCT" in dm.entity_types


def test_missing_file_without_a_data_set_name(tmp_path):
    dm = NERDataModule(dir=str(tmp_path))
    with pytest.raises(NerlabError, match=f"data.dir={tmp_path}: missing train.txt, valid.txt"):
        dm.setup()


def test_real_training_split_encodes(conll_dir):
    dm = NERDataModule(dir=str(conll_dir))
    dm.setup()
    assert dm.stats["train_tokens"] == 203621 and dm.stats["val_tokens"] == 51362
    assert len(dm.vocabs.tags) == 17


def test_prepare_data_uses_a_verified_local_copy(tmp_path, conll_dir, caplog):
    dm = NERDataModule(
        default_dir=str(tmp_path / "absent"), dataset="conll2003", local_copies=[str(conll_dir)]
    )
    with caplog.at_level("WARNING", logger="nerlab.data.datamodule"):
        dm.prepare_data()
    assert dm.dir == conll_dir
    assert not (tmp_path / "absent").exists()  # nothing copied
    assert f"reading the verified local copy of conll2003 in {conll_dir}" in caplog.text
    assert dm.source == {"origin": "verified local copy", "dir": str(conll_dir.resolve())}


def test_a_named_folder_never_falls_back_on_the_local_copy(tmp_path, conll_dir):
    """data.dir given: the verified copy and the download are not used, whatever is missing."""
    empty = tmp_path / "empty"
    empty.mkdir()
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("train.txt", "dev.txt", "test.txt"):
        (dev / name).write_text("EU B-ORG\n")
    cases = [
        (tmp_path / "absent", "absent: no such folder; expected a folder with train.txt, "),
        (empty, "empty: missing train.txt, valid.txt, test.txt (data.val_file=null holds out"),
        (
            dev,
            "dev: missing valid.txt (data.val_file=null holds out part of train; "
            "data.val_file=NAME names another file (dev.txt here))",
        ),
    ]
    for folder, message in cases:
        dm = NERDataModule(
            dir=str(folder),
            default_dir=str(tmp_path / "default"),
            dataset="conll2003",
            local_copies=[str(conll_dir)],
        )
        with pytest.raises(NerlabError) as error:
            dm.prepare_data()
        assert f"data.dir={folder}" in str(error.value) and message in str(error.value)
        assert "\n" not in str(error.value)
        assert dm.dir == folder and dm.source == {}


def test_relative_file_names_are_read_in_the_named_folder(tmp_path, monkeypatch, tiny_corpus):
    """A train.txt in the working directory does not shadow the one in data.dir."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.txt").write_text("Elsewhere B-LOC\n")
    dm = NERDataModule(dir=str(tiny_corpus))
    dm.setup()
    assert dm.path("train") == tiny_corpus / "train.txt"
    assert dm.source == {"origin": "data.dir", "dir": str(tiny_corpus.resolve())}
    assert "Elsewhere" not in dm.vocabs.words.index


def test_prepare_data_downloads_from_a_mirror_and_reports_offline(tmp_path, monkeypatch):
    import hashlib
    import http.server
    import socket
    import threading

    from nerlab.data.registry import DatasetSpec, FileSpec, register_dataset
    from nerlab.errors import DownloadError

    served = tmp_path / "served"
    served.mkdir()
    files = {}
    for name, seed in (("train.txt", 1), ("valid.txt", 2), ("test.txt", 3)):
        write_conll(served / name, make_sentences(10, seed=seed))
        files[name] = FileSpec(
            url=f"http://example.invalid/{name}",
            sha256=hashlib.sha256((served / name).read_bytes()).hexdigest(),
        )
    register_dataset(
        DatasetSpec(name="tiny-test-set", description="fixture", files=files, license="none"),
        replace=True,
    )

    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("NERLAB_DATA_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
        dm = NERDataModule(default_dir=str(tmp_path / "dl"), dataset="tiny-test-set")
        dm.setup()
        assert len(dm.splits["train"]) == 10
        assert dm.source == {"origin": "download", "dir": str((tmp_path / "dl").resolve())}
        assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == [
            "test.txt",
            "train.txt",
            "valid.txt",
        ]
    finally:
        server.shutdown()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("NERLAB_DATA_MIRROR", f"http://127.0.0.1:{closed}")
    dm = NERDataModule(default_dir=str(tmp_path / "offline"), dataset="tiny-test-set")
    with pytest.raises(
        DownloadError, match=r"could not download http://127.0.0.1:\d+/train.txt.*data.dir="
    ):
        dm.prepare_data()
    assert not any((tmp_path / "offline").glob("*.txt"))
