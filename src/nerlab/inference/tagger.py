"""Putting text through a trained model: :class:`Tagger`.

``Tagger.load(model_dir)`` rebuilds the network from ``model_info.json`` and the safetensors
weights (nothing is unpickled); ``Tagger.load(model_dir, backend="onnx")`` runs the network
that ``make export`` wrote with onnxruntime instead, and imports no torch. Either way the CRF
decodes in NumPy (:mod:`nerlab.inference.crf_numpy`).

``tag`` takes token lists and returns IOB2 tags; ``predict`` takes raw text, tokenizes it
keeping character offsets, and returns entities with their span and its probability.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from nerlab.data.batching import DocumentBatchSampler, SortedBatchSampler, make_batch
from nerlab.data.encoding import FormTable, encode_split
from nerlab.data.tag_schemes import conlleval_spans, ids_to_iob2, span_cases
from nerlab.data.tokenizer import tokenize
from nerlab.data.vocab import Vocabularies
from nerlab.errors import ConfigError
from nerlab.inference import crf_numpy
from nerlab.inference.runners import OnnxRunner, TorchRunner, load_runner


def entities(
    tags: Sequence[str],
    tokens: Sequence[str],
    *,
    text: str | None = None,
    offsets: Sequence[tuple[int, int]] | None = None,
    confidence: dict[tuple[str, int, int], float] | None = None,
    min_confidence: float = 0.0,
) -> list[dict]:
    """The entities of one tagged sentence (IOB2 ``tags``), read as conlleval reads them.

    With ``text`` and ``offsets`` (each token's ``(start, end)`` in ``text``) an entity is
    ``{"text", "label", "start", "end"}`` in characters (``end`` exclusive); without them it is
    ``{"text", "label", "first_token", "last_token"}`` (inclusive), its text the tokens joined
    by spaces. ``confidence`` (each chunk's probability, keyed ``(label, first, last)``) adds
    it to its entity, and entities below ``min_confidence`` are left out.
    """
    out = []
    for label, first, last in conlleval_spans(tags):
        if offsets is not None and text is not None:
            start, end = offsets[first][0], offsets[last][1]
            entity = {"text": text[start:end], "label": label, "start": start, "end": end}
        else:
            entity = {
                "text": " ".join(tokens[first : last + 1]),
                "label": label,
                "first_token": first,
                "last_token": last,
            }
        if confidence is not None:
            entity["confidence"] = min(1.0, max(0.0, confidence[(label, first, last)]))
            if entity["confidence"] < min_confidence:
                continue
        out.append(entity)
    return out


#: tokens after which ``Tagger.predict`` starts a new sentence (document-context models)
SENTENCE_ENDS = frozenset({".", "!", "?"})


class Tagger:
    """A trained model ready to tag text, in length-sorted batches.

    ``backend="torch"`` (the default) runs the network with PyTorch on ``device``;
    ``backend="onnx"`` runs the exported ONNX model (``quantize="int8"``: its int8 version)
    with onnxruntime on the CPU. The tags and span probabilities come from the same NumPy CRF
    code for both.
    """

    def __init__(
        self,
        net: Any,
        vocabs: Vocabularies,
        info: dict[str, Any],
        *,
        device: str = "cpu",
        batch_size: int = 64,
    ) -> None:
        """``net`` is a runner (:mod:`nerlab.inference.runners`) or a BiLSTMTagger to run with
        PyTorch on ``device``; either way the CRF decodes in NumPy."""
        self.runner = net if isinstance(net, TorchRunner | OnnxRunner) else TorchRunner(net, device)
        self.vocabs = vocabs
        self.info = info
        self.batch_size = batch_size
        self.word_length = (info.get("data") or {}).get("word_length")
        self._windows: dict = {}

    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike | None = None,
        *,
        model_path: str | os.PathLike | None = None,
        model_info_path: str | os.PathLike | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        backend: str = "torch",
        quantize: str | None = None,
        threads: int | None = None,
        tracking_uri: str | None = None,
    ) -> Tagger:
        """A saved model: a directory, or an MLflow URI (``models:/NAME@ALIAS``,
        ``models:/NAME/VERSION``, ``runs:/RUN_ID``) of the store ``tracking_uri`` (default:
        ``MLFLOW_TRACKING_URI``, else the repository's ``mlruns.db``)."""
        runner, vocabs, info = load_runner(
            model_dir,
            model_path=model_path,
            model_info_path=model_info_path,
            device=device,
            backend=backend,
            quantize=quantize,
            threads=threads,
            tracking_uri=tracking_uri,
        )
        return cls(runner, vocabs, info, batch_size=batch_size)

    @property
    def backend(self) -> str:
        return self.runner.backend

    @property
    def net(self):
        """The PyTorch network (torch backend only)."""
        if not isinstance(self.runner, TorchRunner):
            raise AttributeError("an ONNX tagger has no PyTorch network")
        return self.runner.net

    @property
    def device(self):
        return getattr(self.runner, "device", "cpu")

    @property
    def has_crf(self) -> bool:
        return self.runner.crf_scores is not None

    @property
    def entity_types(self) -> list[str]:
        return list(self.info.get("entity_types") or self.vocabs.tags.types)

    @property
    def uses_documents(self) -> bool:
        """Whether the model reads document context (``model.document_memory``)."""
        return bool(self.info.get("model", {}).get("document_memory"))

    @staticmethod
    def _document_ids(count: int, documents) -> np.ndarray | None:
        if documents is None:
            return None
        if isinstance(documents, str):
            if documents != "one":
                raise ConfigError(
                    f"documents must be 'one' or a document number per token "
                    f"list, found {documents!r}"
                )
            return np.zeros(count, dtype=np.int64)
        ids = np.asarray(documents, dtype=np.int64)
        if ids.shape != (count,):
            raise ConfigError(f"{len(ids)} document numbers for {count} token lists")
        return ids

    def _batches(self, token_lists: Sequence[Sequence[str]], documents=None):
        """``(sentence numbers, lengths, batch arrays)``: length-sorted batches, or batches of
        whole documents for a model that reads document context."""
        table = FormTable(self.vocabs.words, self.vocabs.chars, self.word_length)
        docs = self._document_ids(len(token_lists), documents)
        split = encode_split([(list(t), ()) for t in token_lists], table, None, docs=docs)
        table.freeze()
        non_empty = np.flatnonzero(split.lengths > 0)
        if self.uses_documents:
            sampler = DocumentBatchSampler(
                split.documents()[non_empty], self.batch_size, lengths=split.lengths[non_empty]
            )
        else:
            sampler = SortedBatchSampler(split.lengths[non_empty], self.batch_size)
        memory = self.uses_documents
        for positions in sampler:
            indices = non_empty[np.asarray(positions)]
            batch = make_batch(split, table, indices, memory=memory)
            yield indices, split.lengths[indices], batch

    def _run(
        self,
        token_lists: Sequence[Sequence[str]],
        with_confidence: bool = False,
        k: int | None = None,
        documents=None,
        paths: np.ndarray | None = None,
    ) -> tuple[list, list[dict]]:
        """IOB2 tags for each token list, in input order, and with ``with_confidence`` the
        probability of each of its chunks (``{(label, first, last): p}``); with ``k``, each
        token list's ``k`` best tag sequences instead. ``paths`` (``(N, 2)``, CRF models) is
        filled with the log-probabilities of each token list's best and second-best tag
        sequence."""
        tags: list = [[] if k is None else [[]] for _ in token_lists]
        confidence: list[dict] = [{} for _ in token_lists]
        names = self.vocabs.tags.tags
        for indices, lengths, batch in self._batches(token_lists, documents):
            if k is not None:
                paths = self.runner.kbest(batch, k).tolist()  # (B, k, L)
                for row, (idx, n) in enumerate(
                    zip(indices.tolist(), lengths.tolist(), strict=True)
                ):
                    tags[idx] = [ids_to_iob2(path[:n], names) for path in paths[row]]
                continue
            emissions = self.runner.emissions(batch)
            mask = batch["mask"]
            if self.runner.crf_scores is not None:
                id_rows = crf_numpy.viterbi(emissions, mask, *self.runner.crf_scores).tolist()
            else:
                id_rows = emissions.argmax(-1).tolist()
            for row, (idx, n) in enumerate(zip(indices.tolist(), lengths.tolist(), strict=True)):
                tags[idx] = ids_to_iob2(id_rows[row][:n], names)
            messages = None
            if paths is not None:
                # the messages of every sentence: log Z here, the span probabilities below
                crf = self.runner.crf_scores
                messages = crf_numpy.forward_backward(emissions, mask, *crf)
                paths[indices] = (
                    crf_numpy.two_best_scores(emissions, mask, *crf) - messages.logz[:, None]
                )
            if with_confidence:
                self._span_probabilities(emissions, mask, indices, tags, confidence, messages)
        return tags, confidence

    def _case_windows(self, label: str, first: int, last: int, length: int) -> list:
        """``span_cases`` of a chunk as ``(offset of the window from first, allowed (W, K))``;
        they depend only on the label, the chunk's length and whether tokens precede and follow
        it, so each shape is worked out once."""
        key = (label, last - first, first > 0, last + 1 < length)
        windows = self._windows.get(key)
        if windows is None:
            names = self.vocabs.tags.tags
            f = 1 if first > 0 else 0
            lst = f + last - first
            windows = []
            for case in span_cases(names, label, f, lst, lst + 2 if last + 1 < length else lst + 1):
                low = min(case)
                allowed = np.ones((max(case) - low + 1, len(names)), dtype=bool)
                for position, tag_ids in case.items():
                    allowed[position - low] = False
                    allowed[position - low, sorted(tag_ids)] = True
                windows.append((low - f, allowed))
            self._windows[key] = windows
        return windows

    def _span_probabilities(
        self, emissions, mask, indices, tags, confidence, messages=None
    ) -> None:
        """The exact probability of each predicted chunk: for every chunk, the disjoint sets of
        tag paths that read as exactly that chunk (``span_cases``), each a constrained pass
        over the positions the case names (:func:`crf_numpy.window_log_probs`). ``messages``:
        the batch's forward-backward messages when the caller has them already."""
        rows, lows, windows, keys = [], [], [], []
        for row, idx in enumerate(indices.tolist()):
            n = len(tags[idx])
            for span in conlleval_spans(tags[idx]):
                for offset, allowed in self._case_windows(*span, n):
                    rows.append(row)
                    lows.append(span[1] + offset)
                    windows.append(allowed)
                    keys.append((idx, span))
        if not rows:
            return
        width = max(w.shape[0] for w in windows)
        allowed = np.ones((len(windows), width, emissions.shape[2]), dtype=bool)  # (N, W, K)
        for i, window in enumerate(windows):
            allowed[i, : window.shape[0]] = window
        crf = self.runner.crf_scores
        if messages is None:
            used = sorted(set(rows))
            if crf is not None:
                # the forward and backward messages of the sentences that have a chunk, once each
                messages = crf_numpy.forward_backward(emissions[used], mask[used], *crf)
            where = {r: i for i, r in enumerate(used)}
            emissions, rows = emissions[used], [where[r] for r in rows]
        log_p = crf_numpy.window_log_probs(
            emissions, messages, crf, np.asarray(rows), np.asarray(lows), allowed
        )
        for (idx, span), p in zip(keys, np.exp(log_p).tolist(), strict=True):
            confidence[idx][span] = confidence[idx].get(span, 0.0) + p

    def tag(
        self, token_lists: Sequence[Sequence[str]], k: int | None = None, documents=None
    ) -> list:
        """IOB2 tags for each list of tokens: ``[["John", "lives"]] -> [["B-PER", "O"]]``.

        With ``k``, the ``k`` best tag sequences of each (CRF models, torch backend):
        ``[[best, second, ...]]``, best first; the first is what ``tag`` gives without ``k``.
        ``documents`` says which token lists are sentences of one document, for a model that
        reads document context: ``"one"`` (all of them) or a document number per token list;
        by default each is a document of its own.
        """
        return self._run(token_lists, k=k, documents=documents)[0]

    def tag_with_uncertainty(
        self, token_lists: Sequence[Sequence[str]], documents=None
    ) -> tuple[list[list[str]], list[dict], np.ndarray]:
        """:meth:`tag_with_confidence`, and the log-probabilities of each token list's best and
        second-best tag sequence, ``(N, 2)`` (exact: a two-best Viterbi pass and the forward
        algorithm; -inf where there is no second sequence). CRF models only."""
        if self.runner.crf_scores is None:
            raise ConfigError("sequence probabilities need a CRF model (model.crf=true)")
        paths = np.zeros((len(token_lists), 2))
        paths[:, 1] = -np.inf  # an empty token list: its one (empty) sequence is sure
        tags, confidence = self._run(token_lists, True, documents=documents, paths=paths)
        return tags, confidence, paths

    def tag_with_confidence(
        self, token_lists: Sequence[Sequence[str]], documents=None
    ) -> tuple[list[list[str]], list[dict[tuple[str, int, int], float]]]:
        """IOB2 tags of each token list and the probability of each of its predicted chunks,
        ``{(label, first, last): p}`` (inclusive token indices); ``documents`` as in :meth:`tag`."""
        return self._run(token_lists, True, documents=documents)

    def marginals(self, token_lists: Sequence[Sequence[str]], documents=None) -> list[np.ndarray]:
        """Each token's probability of each tag, ``(n, K)`` per token list, in input order.

        The columns are the model's own tags (``self.vocabs.tags.tags``, in the scheme it was
        trained with, e.g. IOBES); each row sums to 1. A CRF model gives the exact posterior
        marginals (forward-backward over every tag path), a softmax model its per-token
        softmax. ``documents`` as in :meth:`tag`."""
        out = [np.zeros((0, len(self.vocabs.tags.tags))) for _ in token_lists]
        for indices, lengths, batch in self._batches(token_lists, documents):
            emissions = self.runner.emissions(batch).astype(np.float64)
            if self.runner.crf_scores is not None:
                messages = crf_numpy.forward_backward(
                    emissions, batch["mask"], *self.runner.crf_scores
                )
                probs = messages.alpha * messages.beta
            else:
                probs = np.exp(emissions - emissions.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            for row, (idx, n) in enumerate(zip(indices.tolist(), lengths.tolist(), strict=True)):
                out[idx] = probs[row, :n]
        return out

    def predict_tokens(
        self, token_lists: Sequence[Sequence[str]], min_confidence: float = 0.0, documents=None
    ) -> list[list[dict]]:
        """Entities of already tokenized sentences: ``{"text", "label", "first_token",
        "last_token", "confidence"}`` (token indices inclusive), as :meth:`predict` scores them."""
        tags, confidence = self._run(token_lists, True, documents=documents)
        return [
            entities(seq, tokens, confidence=conf, min_confidence=min_confidence)
            for tokens, seq, conf in zip(token_lists, tags, confidence, strict=True)
        ]

    def _run_documents(self, token_lists, documents) -> tuple[list, list[dict]]:
        """Tag each token list as a document of the sentences it holds, and put the tags and
        chunk probabilities back together per token list."""
        text_docs = self._document_ids(len(token_lists), documents)
        pieces, owner, starts = [], [], []
        for i, tokens in enumerate(token_lists):
            start = 0
            for end in range(1, len(tokens) + 1):
                if end == len(tokens) or tokens[end - 1] in SENTENCE_ENDS:
                    pieces.append(tokens[start:end])
                    owner.append(i)
                    starts.append(start)
                    start = end
        docs = owner if text_docs is None else [int(text_docs[i]) for i in owner]
        piece_tags, piece_conf = self._run(pieces, True, documents=docs)
        tags: list = [[] for _ in token_lists]
        confidence: list[dict] = [{} for _ in token_lists]
        for i, start, seq, conf in zip(owner, starts, piece_tags, piece_conf, strict=True):
            tags[i].extend(seq)
            for (label, first, last), p in conf.items():
                confidence[i][(label, first + start, last + start)] = p
        return tags, confidence

    def predict(
        self, texts: str | Sequence[str], min_confidence: float = 0.0, documents=None
    ) -> list[dict] | list[list[dict]]:
        """Entities of a text (or of each text of a list).

        Each entity is ``{"text", "label", "start", "end", "confidence"}`` with character
        offsets into the input (``end`` exclusive). The confidence is the probability the model
        gives exactly that labelled span: the total probability of the tag paths that read as
        it (a constrained forward pass). Entities below ``min_confidence`` are left out.

        A model that reads document context tags each text as a document: its sentences (cut
        after ``.``, ``!`` and ``?``) are tagged together; ``documents`` (as in :meth:`tag`)
        also joins texts into one document.
        """
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        tokenized = [tokenize(t) for t in batch]
        token_lists = [[tok for tok, _, _ in toks] for toks in tokenized]
        if self.uses_documents:
            tags, confidence = self._run_documents(token_lists, documents)
        else:
            tags, confidence = self._run(token_lists, True, documents=documents)
        results = [
            entities(
                seq,
                [tok for tok, _, _ in toks],
                text=text,
                offsets=[(start, end) for _, start, end in toks],
                confidence=conf,
                min_confidence=min_confidence,
            )
            for text, toks, seq, conf in zip(batch, tokenized, tags, confidence, strict=True)
        ]
        return results[0] if single else results
