"""Vocabularies (built from train only, JSON round trip) and the fixed-size array dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_sentences, write_conll

from nerlab.data import CharVocab, SequentialTaggingDataset, TagVocab, WordVocab
from nerlab.data.vocab import PAD_ID, UNK_ID


def test_word_vocab_options_and_json_round_trip():
    sentences = [["Paris", "1996", "paris", "rare"], ["Paris", "2001"]]
    vocab = WordVocab.build(sentences, lowercase=True, zero_digits=True, min_freq=2)
    assert vocab.words[:2] == ["<pad>", "<unk>"]
    assert vocab.lookup("PARIS") == vocab.lookup("paris") > UNK_ID  # lowercase lookup
    assert vocab.lookup("1234") == vocab.index["0000"]  # digits to zero
    assert vocab.lookup("rare") == UNK_ID  # below min_freq
    assert vocab.counts[vocab.index["paris"]] == 3
    again = WordVocab.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again.words == vocab.words and again.lookup("Paris") == vocab.lookup("Paris")
    cased = WordVocab.build(sentences, lowercase=False, zero_digits=False)
    assert cased.lookup("Paris") != cased.lookup("paris") and cased.lookup("2001") > UNK_ID


def test_char_and_tag_vocabs():
    chars = CharVocab.build(["abc", "abd"])
    assert chars.encode("abz") == [chars.index["a"], chars.index["b"], UNK_ID]
    assert CharVocab.from_json(chars.to_json()).chars == chars.chars
    tags = TagVocab.build([["B-PER", "E-PER", "O"], ["S-LOC"]], "iobes")
    assert tags.tags == ["O", "S-LOC", "B-PER", "E-PER"]
    assert tags.types == ["LOC", "PER"]
    assert TagVocab.from_json(tags.to_json()).index == tags.index


def test_sequential_tagging_dataset_keeps_words_and_chars_aligned(tmp_path):
    train = write_conll(tmp_path / "train.txt", make_sentences(40, seed=5))
    test = tmp_path / "test.txt"
    test.write_text("Supercalifragilistic B-PER\n" + "".join(f"w{i} O\n" for i in range(10)))
    data = SequentialTaggingDataset(train, test, sentence_length=6, word_length=4)
    words, chars, tags = data.test_set
    assert words.shape == (1, 6) and chars.shape == (1, 6, 4) and tags.shape == (1, 6)
    # the long word keeps its first 4 characters in row 0, the words after it follow in order
    assert chars[0, 0].tolist() == data.char_vocab.encode("Supe")
    assert chars[0, 0, 0] == UNK_ID and chars[0, 0, 2] == data.char_vocab.index["p"]
    assert [chars[0, j, :2].tolist() for j in range(1, 6)] == [
        data.char_vocab.encode(f"w{j}") for j in range(5)
    ]
    assert tags[0, 0] == data.y_labels["B-PER"] and (tags[0, 1:] == data.y_labels["O"]).all()
    tr_words, tr_chars, _ = data.train_set
    for row_w, row_c in zip(tr_words, tr_chars, strict=True):
        # a padded word never has characters and a real word always has some
        assert ((row_w == PAD_ID) == (row_c[:, 0] == PAD_ID)).all()
    assert data.word_vocab_size == len(data.word_vocab) and data.char_vocab_size > 2
    with pytest.raises(ValueError, match="positive"):
        SequentialTaggingDataset(train, test, sentence_length=0)
    assert np.issubdtype(words.dtype, np.integer)
