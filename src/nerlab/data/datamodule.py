"""`NERDataModule`: BIO/CoNLL files to batches of tensors.

``prepare_data`` finds or downloads the files; ``setup`` parses every split once, builds the
vocabularies from the training split and encodes everything into integer arrays; the dataloaders
then only gather and pad (dynamic padding, length buckets for training, length-sorted batches
for evaluation, each batch carrying its sentences' indices so predictions can be put back in
order).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from nerlab.data.batching import (
    BucketBatchSampler,
    DocumentBatchSampler,
    SortedBatchSampler,
    make_batch,
    to_tensors,
)
from nerlab.data.conll import Sentence, convert_corpus, document_ids, read_conll, to_iob2
from nerlab.data.corpus import hold_out, prepare_corpus
from nerlab.data.encoding import EncodedSplit, FormTable, encode_split
from nerlab.data.vocab import Vocabularies
from nerlab.errors import DataFormatError, DownloadError, NerlabError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class _BatchDataset(Dataset):
    """Map-style dataset whose items are whole batches: the sampler yields lists of indices."""

    def __init__(
        self,
        split: EncodedSplit,
        table: FormTable,
        singleton_unk_prob: float = 0.0,
        seed: int = 0,
        memory: bool = False,
    ) -> None:
        self.split = split
        self.table = table
        self.singleton_unk_prob = singleton_unk_prob
        self.seed = seed
        self.memory = memory

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, indices: list[int]) -> dict:
        return to_tensors(
            make_batch(
                self.split,
                self.table,
                np.asarray(indices),
                singleton_unk_prob=self.singleton_unk_prob,
                seed=self.seed,
                memory=self.memory,
            )
        )


class NERDataModule(L.LightningDataModule):
    """Column files (``train.txt``, ``valid.txt``, ``test.txt`` in ``dir``) as batches.

    The arguments are ``conf/data``'s keys, kept as :attr:`hparams`. Sizes the model needs
    (vocabularies, tag count) are read from :attr:`vocabs` after :meth:`setup`.
    ``extra_words`` (a predicate) lets words of the validation and test files that have a
    pretrained vector join the word vocabulary, as Lample's ``all_emb`` did.
    """

    def __init__(
        self,
        dir: str | None = None,
        default_dir: str | None = None,
        train_file: str | None = "train.txt",
        val_file: str | None = "valid.txt",
        test_file: str | None = "test.txt",
        dataset: str | None = None,
        download: bool = True,
        local_copies: list[str] | None = None,
        tag_column: int = -1,
        source_scheme: str = "auto",
        tag_scheme: str = "iobes",
        on_invalid: str = "repair",
        lowercase: bool = False,
        zero_digits: bool = True,
        min_freq: int = 1,
        singleton_unk_prob: float = 0.5,
        word_length: int | None = None,
        sentence_length: int | None = None,
        val_fraction: float = 0.1,
        batch_size: int = 32,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 42,
        documents: str | int = "auto",
        batch_by_document: bool = False,
        rehearse_file: str | None = None,
        rehearse_sentences: int = 0,
        extra_words: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__()
        # the whole config is MLflow's params already: the Trainer does not log these again
        self.save_hyperparameters(ignore=["extra_words"], logger=False)
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise NerlabError(f"data.{name} must be positive, found {value}")
        for name, value in (("word_length", word_length), ("sentence_length", sentence_length)):
            if value is not None and value < 1:
                raise NerlabError(f"data.{name} must be positive or null, found {value}")
        if not 0.0 < val_fraction < 1.0:
            raise NerlabError(f"data.val_fraction must be in (0, 1), found {val_fraction}")
        # A folder the user names is the folder used: the fallbacks (a verified local copy,
        # then the download) apply only to the data set's default folder (``dir`` unset).
        self.explicit_dir = bool(dir)
        self.dir = Path(dir) if dir else (Path(default_dir) if default_dir else None)
        self.files = {"train": train_file, "val": val_file, "test": test_file}
        self.local_copies = [Path(p) for p in local_copies or []]
        self.extra_words = extra_words
        #: where the files were read from: ``{"origin": ..., "dir": ...}``, set by prepare_data
        self.source: dict[str, str] = {}
        self.vocabs: Vocabularies | None = None
        #: the vocabularies of a model training continues from (``init_from``): extended, with
        #: their ids kept
        self.base_vocabs: Vocabularies | None = None
        self._warned = False
        self.splits: dict[str, EncodedSplit] = {}
        self.sentences: dict[str, list[Sentence]] = {}
        self.stats: dict[str, float] = {}

    # ----------------------------------------------------------------------------- files
    def path(self, split: str) -> Path | None:
        """The file of ``split``; a relative file name is taken relative to ``dir``."""
        name = self.files[split]
        if not name:
            return None
        path = Path(name)
        if self.dir is not None and not path.is_absolute():
            path = self.dir / path
        return path

    def _missing(self) -> list[Path]:
        return [p for s in SPLITS if (p := self.path(s)) is not None and not p.exists()]

    def prepare_data(self) -> None:
        """Make sure the files exist. A folder given as ``data.dir`` must hold them; only the
        data set's default folder falls back on a verified local copy, then on the download."""
        missing = self._missing()
        if not missing:
            self._record("data.dir" if self.explicit_dir else "default folder")
            return
        if self.explicit_dir:
            raise NerlabError(self._missing_message(missing))
        if self.hparams.dataset is None or self.dir is None:
            raise DataFormatError(missing[0], None, "an existing file", "no such file")
        from nerlab.data.download import sha256_file
        from nerlab.data.registry import get_dataset

        spec = get_dataset(self.hparams.dataset)
        for copy in self.local_copies:
            if all(
                (copy / name).exists() and sha256_file(copy / name) == f.sha256
                for name, f in spec.files.items()
            ):
                log.warning(
                    "data.dir is not set and %s has no %s: reading the verified local copy of "
                    "%s in %s",
                    self.dir,
                    ", ".join(p.name for p in missing),
                    spec.name,
                    copy,
                )
                self.dir = copy
                self._record("verified local copy")
                return
        if not self.hparams.download:
            raise DownloadError(
                f"{missing[0]} is missing and data.download=false; put the files of "
                f"{spec.name} in a folder and run with data.dir=/that/folder"
            )
        from nerlab.data.download import download_dataset

        log.warning("data.dir is not set: downloading %s into %s", spec.name, self.dir)
        download_dataset(spec, self.dir)
        self._record("download")

    def _record(self, origin: str) -> None:
        folder = self.dir if self.dir is not None else Path.cwd()
        self.source = {"origin": origin, "dir": str(folder.resolve())}

    def _missing_message(self, missing: list[Path]) -> str:
        """One line: the folder, each missing file, and the hint that fits."""
        folder = self.dir
        assert folder is not None
        if not folder.is_dir():
            found = "no such folder" if not folder.exists() else "not a folder"
            return (
                f"data.dir={folder}: {found}; expected a folder with "
                f"{', '.join(str(n) for n in self.files.values() if n)}"
            )
        hints = []
        present = sorted(p.name for p in folder.iterdir() if p.is_file())
        for split, key in (("train", "train_file"), ("val", "val_file"), ("test", "test_file")):
            path = self.path(split)
            if path is None or path not in missing:
                continue
            if split == "val":
                hints.append("data.val_file=null holds out part of train")
            others = [n for n in present if n not in {p.name for p in self._present()}]
            if others:
                hints.append(f"data.{key}=NAME names another file ({', '.join(others[:5])} here)")
        listed = ", ".join(p.name if p.parent == folder else str(p) for p in missing)
        hint = f" ({'; '.join(dict.fromkeys(hints))})" if hints else ""
        return f"data.dir={folder}: missing {listed}{hint}"

    def _present(self) -> list[Path]:
        return [p for s in SPLITS if (p := self.path(s)) is not None and p.exists()]

    # ----------------------------------------------------------------------------- setup
    def _read(self, split: str) -> list[Sentence] | None:
        path = self.path(split)
        if path is None:
            return None
        raw = read_conll(path, self.hparams.tag_column)
        sentences, scheme, _ = to_iob2(
            raw, path, source=self.hparams.source_scheme, on_invalid=self.hparams.on_invalid
        )
        log.info("%s: %d sentences, tag scheme %s", path, len(sentences), scheme.upper())
        return sentences

    def setup(self, stage: str | None = None) -> None:
        if self.vocabs is not None:
            return  # parse and encode once, whatever stages follow
        self.prepare_data()
        hp = self.hparams
        train = self._read("train")
        if train is None:
            raise NerlabError("data.train_file is required")
        val = self._read("val")
        if val is None:
            train, val = hold_out(train, hp.val_fraction, hp.seed)
            log.info("no validation file: holding out %d training sentences", len(val))
        if hp.rehearse_file and hp.rehearse_sentences > 0:
            train = train + self._rehearsal(train)
        corpus = prepare_corpus(
            train,
            val,
            self._read("test"),
            tag_scheme=hp.tag_scheme,
            lowercase=hp.lowercase,
            zero_digits=hp.zero_digits,
            min_freq=hp.min_freq,
            word_length=hp.word_length,
            sentence_length=hp.sentence_length,
            documents=hp.documents,
            extra_words=self.extra_words,
            base=self.base_vocabs,
        )
        self.vocabs, self.table = corpus.vocabs, corpus.table
        self.splits, self.sentences = corpus.splits, corpus.sentences
        for split, unseen in corpus.unseen_types().items():
            for type_, sentence, offset in unseen:
                log.warning(
                    "%s:%d: entity type %s never occurs in the training data; "
                    "its entities count as missed",
                    self.path(split) or split,
                    sentence.line + offset,
                    type_,
                )
        self.stats = corpus.statistics()

    def _rehearsal(self, train: list[Sentence]) -> list[Sentence]:
        """``rehearse_sentences`` sentences of ``rehearse_file`` (the data an earlier model was
        trained on), drawn with the run's seed and kept in file order; their documents are
        numbered after ``train``'s, so they never share one with it."""
        hp = self.hparams
        path = Path(hp.rehearse_file)
        if not path.is_file():
            raise NerlabError(f"data.rehearse_file={path}: no such file")
        raw = read_conll(path, hp.tag_column)
        old, _, _ = to_iob2(raw, path, source=hp.source_scheme, on_invalid=hp.on_invalid)
        rng = np.random.default_rng(hp.seed)
        count = min(hp.rehearse_sentences, len(old))
        picked = sorted(rng.choice(len(old), size=count, replace=False).tolist())
        shift = 1 + max((s.doc for s in train if s.doc is not None), default=-1)
        log.info("rehearsing %d sentences of %s", count, path)
        return [
            Sentence(
                old[i].tokens,
                old[i].tags,
                old[i].line,
                None if old[i].doc is None else old[i].doc + shift,
            )
            for i in picked
        ]

    def encode_more(self, name: str, sentences: list[Sentence]) -> EncodedSplit:
        """Encode another labelled corpus (IOB2) against the frozen vocabularies."""
        assert self.vocabs is not None, "call setup() first"
        converted = convert_corpus(sentences, self.hparams.tag_scheme)
        split = encode_split(
            converted,
            self.table,
            self.vocabs.tags,
            gold_iob2=[s.tags for s in sentences],
            docs=document_ids(sentences, self.hparams.documents),
        )
        self.table.freeze()
        self.splits[name] = split
        self.sentences[name] = list(sentences)
        return split

    @property
    def entity_types(self) -> list[str]:
        """Types scored: those of training plus any that only occur in validation/test gold."""
        assert self.vocabs is not None
        types = set(self.vocabs.tags.types)
        for sents in self.sentences.values():
            types.update(t[2:] for s in sents for t in s.tags if t != "O")
        return sorted(types)

    # ----------------------------------------------------------------------------- loaders
    def _replicas(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def _loader(self, split: EncodedSplit, sampler, singleton_unk_prob: float = 0.0) -> DataLoader:
        hp = self.hparams
        return DataLoader(
            _BatchDataset(split, self.table, singleton_unk_prob, hp.seed, hp.batch_by_document),
            sampler=sampler,
            batch_size=None,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
            persistent_workers=hp.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        split, hp = self.splits["train"], self.hparams
        replicas, rank = self._replicas()
        if hp.batch_by_document:
            self._warn_about_long_documents(split.documents())
            sampler = DocumentBatchSampler(
                split.documents(),
                hp.batch_size,
                shuffle=True,
                seed=hp.seed,
                num_replicas=replicas,
                rank=rank,
                lengths=split.lengths,
            )
        else:
            sampler = BucketBatchSampler(
                split.lengths, hp.batch_size, seed=hp.seed, num_replicas=replicas, rank=rank
            )
        return self._loader(split, sampler, hp.singleton_unk_prob)

    def _warn_about_long_documents(self, docs: np.ndarray) -> None:
        """A document of many batches' sentences trains as one batch (a document model sees a
        document at once): say so, once, with what to do."""
        if self._warned or not len(docs):
            return
        self._warned = True
        sizes = np.bincount(docs - docs.min())
        largest, limit = int(sizes.max()), 4 * self.hparams.batch_size
        if largest > limit:
            log.warning(
                "%s: a document of %d sentences (more than 4 batches of data.batch_size=%d) "
                "trains as one batch; if the file's -DOCSTART- lines do not mark real "
                "documents, set data.documents=N (N sentences each) or train "
                "experiment=conll03_sentence",
                self.path("train") or "train",
                largest,
                self.hparams.batch_size,
            )

    def eval_dataloader(self, name: str) -> DataLoader:
        split, size = self.splits[name], self.hparams.eval_batch_size
        replicas, rank = self._replicas()
        if self.hparams.batch_by_document:
            sampler = DocumentBatchSampler(
                split.documents(), size, num_replicas=replicas, rank=rank, lengths=split.lengths
            )
        else:
            sampler = SortedBatchSampler(split.lengths, size, num_replicas=replicas, rank=rank)
        return self._loader(split, sampler)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")
