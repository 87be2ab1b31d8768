"""A labelled corpus (train, validation, test) made ready for a model, torch-free.

:func:`prepare_corpus` does what every run does once before training: hold part of train out
when there is no validation file, cap training sentence lengths, build the vocabularies from
the training split (plus the evaluation words that have a pretrained vector, when asked),
convert the tags to the training scheme and encode every split into integer arrays. The
``LightningDataModule`` (``nerlab.data.datamodule``) only finds the files and batches the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nerlab.data.conll import Sentence, convert_corpus, document_ids
from nerlab.data.encoding import EncodedSplit, FormTable, encode_split, unknown_id_rate
from nerlab.data.vocab import CharVocab, TagVocab, Vocabularies, WordVocab
from nerlab.errors import NerlabError

log = logging.getLogger(__name__)


@dataclass
class EncodedCorpus:
    """The vocabularies, the form table and each split encoded; ``sentences`` holds each
    split's IOB2 gold sentences (what scores are computed against)."""

    vocabs: Vocabularies
    table: FormTable
    splits: dict[str, EncodedSplit]
    sentences: dict[str, list[Sentence]] = field(default_factory=dict)

    def statistics(self) -> dict[str, float]:
        """Vocabulary sizes and each split's sentences, tokens and unknown-word rate."""
        stats: dict[str, float] = {
            "vocab_words": len(self.vocabs.words),
            "vocab_chars": len(self.vocabs.chars),
            "num_tags": len(self.vocabs.tags),
        }
        for name, split in self.splits.items():
            stats[f"{name}_sentences"] = len(split)
            stats[f"{name}_tokens"] = split.num_tokens
            if name != "train":
                stats[f"{name}_oov_rate"] = round(unknown_id_rate(split, self.table), 6)
        return stats

    def unseen_types(self) -> dict[str, list[tuple[str, Sentence, int]]]:
        """Per evaluation split, each entity type training never saw, with the first sentence
        and token offset where it occurs."""
        known = set(self.vocabs.tags.types)
        out: dict[str, list[tuple[str, Sentence, int]]] = {}
        for split in ("val", "test"):
            seen: set[str] = set()
            for s in self.sentences.get(split, ()):
                for offset, tag in enumerate(s.tags):
                    type_ = tag[2:]
                    if tag != "O" and type_ not in known and type_ not in seen:
                        seen.add(type_)
                        out.setdefault(split, []).append((type_, s, offset))
        return out


def hold_out(
    train: list[Sentence], fraction: float, seed: int
) -> tuple[list[Sentence], list[Sentence]]:
    """A seeded ``fraction`` of ``train`` (at least one sentence) as validation, both in file
    order: ``(train, validation)``."""
    order = np.random.default_rng(seed).permutation(len(train))
    n_val = max(1, int(round(fraction * len(train))))
    val = [train[i] for i in sorted(order[:n_val])]
    rest = [train[i] for i in sorted(order[n_val:])]
    return rest, val


def prepare_corpus(
    train: list[Sentence],
    val: list[Sentence],
    test: list[Sentence] | None,
    *,
    tag_scheme: str = "iobes",
    lowercase: bool = False,
    zero_digits: bool = True,
    min_freq: int = 1,
    word_length: int | None = None,
    sentence_length: int | None = None,
    documents: str | int = "auto",
    extra_words: Callable[[str], bool] | None = None,
    base: Vocabularies | None = None,
) -> EncodedCorpus:
    """Vocabularies from ``train`` (IOB2 sentences), every split encoded against them.

    ``sentence_length`` caps training sentences (evaluation never truncates); ``extra_words``
    (a predicate) lets validation and test words for which it holds join the word vocabulary,
    as Lample's ``all_emb`` did for words with a pretrained vector. With ``base`` (the
    vocabularies of a model training continues from) the vocabularies extend ``base``'s: its
    words, characters and tags keep their ids and the new ones come after.
    """
    if base is not None:
        if base.tags.scheme != tag_scheme:
            raise NerlabError(
                f"the model continued from tags {base.tags.scheme.upper()}; set "
                f"data.tag_scheme={base.tags.scheme} (found {tag_scheme})"
            )
        lowercase, zero_digits = base.words.lowercase, base.words.zero_digits
    gold = {"train": train, "val": val, "test": test}
    if sentence_length:
        train = [
            Sentence(s.tokens[:sentence_length], s.tags[:sentence_length], s.line, s.doc)
            for s in train
        ]
    words = WordVocab.build(
        (s.tokens for s in train), lowercase=lowercase, zero_digits=zero_digits, min_freq=min_freq
    )
    if extra_words is not None:
        for split in (val, test):
            for token in (t for s in split or () for t in s.tokens):
                key = words.key(token)
                if key not in words.index and extra_words(token):
                    words.add(key)
    chars = CharVocab.build(w for s in train for w in s.tokens)
    train_scheme = convert_corpus(train, tag_scheme)
    tags = TagVocab.build((s.tags for s in train_scheme), tag_scheme)
    if base is not None:
        words, chars, tags = (
            base.words.extended(words),
            base.chars.extended(chars),
            base.tags.extended(tags),
        )
    table = FormTable(words, chars, word_length)
    splits = {}
    for name, sents in (("train", train), ("val", val), ("test", test)):
        if sents is None:
            continue
        converted = train_scheme if name == "train" else convert_corpus(sents, tag_scheme)
        splits[name] = encode_split(
            converted,
            table,
            tags,
            gold_iob2=[s.tags for s in sents],
            docs=document_ids(sents, documents),
        )
    table.freeze()
    sentences = {k: v for k, v in gold.items() if v is not None}
    return EncodedCorpus(Vocabularies(words, chars, tags), table, splits, sentences)
