"""Putting text through a trained model: :class:`Tagger`.

``Tagger.load(model_dir)`` rebuilds the network from ``model_info.json`` and the safetensors
weights (nothing is unpickled). ``tag`` takes token lists and returns IOB2 tags; ``predict``
takes raw text, tokenizes it keeping character offsets, and returns entities with their span
and a confidence from the CRF's marginals.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from nerlab.data.batching import SortedBatchSampler, make_batch, to_tensors
from nerlab.data.encoding import FormTable, encode_split
from nerlab.data.tag_schemes import conlleval_spans, ids_to_iob2, span_cases
from nerlab.data.tokenizer import tokenize
from nerlab.data.vocab import Vocabularies
from nerlab.errors import ConfigError
from nerlab.inference.model_dir import load_model
from nerlab.models.tagger import BiLSTMTagger


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


class Tagger:
    """A trained model ready to tag text, on CPU or GPU, in length-sorted batches.

    ``crf_backend`` picks how the CRF decodes: ``"torch"`` (the default: batched PyTorch on
    any device) or ``"auto"``/``"numba"`` (numba's compiled kernels on the CPU). The compiled
    kernels decode about 10% faster on the CPU but cost about 120 MB of memory for LLVM and
    the kernels, which a served tagger rarely wants (docs/performance.md).
    """

    def __init__(
        self,
        net: BiLSTMTagger,
        vocabs: Vocabularies,
        info: dict[str, Any],
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        crf_backend: str = "torch",
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        if crf_backend not in ("torch", "auto", "numba"):
            raise ConfigError(f"crf_backend must be torch, auto or numba, found {crf_backend!r}")
        if self.net.crf is not None:
            self.net.crf.backend = crf_backend
        self.vocabs = vocabs
        self.info = info
        self.batch_size = batch_size
        self.word_length = (info.get("data") or {}).get("word_length")

    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike | None = None,
        *,
        model_path: str | os.PathLike | None = None,
        model_info_path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        crf_backend: str = "torch",
    ) -> Tagger:
        net, vocabs, info = load_model(
            model_dir, model_path=model_path, model_info_path=model_info_path
        )
        return cls(net, vocabs, info, device=device, batch_size=batch_size, crf_backend=crf_backend)

    @property
    def entity_types(self) -> list[str]:
        return list(self.info.get("entity_types") or self.vocabs.tags.types)

    @torch.inference_mode()
    def _run(
        self,
        token_lists: Sequence[Sequence[str]],
        with_confidence: bool = False,
        k: int | None = None,
    ) -> tuple[list, list[dict]]:
        """IOB2 tags for each token list, in input order, and with ``with_confidence`` the
        probability of each of its chunks (``{(label, first, last): p}``); with ``k``, each
        token list's ``k`` best tag sequences instead."""
        tags: list = [[] if k is None else [[]] for _ in token_lists]
        confidence: list[dict] = [{} for _ in token_lists]
        if not token_lists:
            return tags, confidence
        table = FormTable(self.vocabs.words, self.vocabs.chars, self.word_length)
        split = encode_split([(list(t), ()) for t in token_lists], table, None)
        table.freeze()
        non_empty = np.flatnonzero(split.lengths > 0)
        names = self.vocabs.tags.tags
        for positions in SortedBatchSampler(split.lengths[non_empty], self.batch_size):
            indices = non_empty[np.asarray(positions)]
            batch = to_tensors(make_batch(split, table, indices), self.device)
            mask = batch["mask"]
            emissions = self.net(batch)
            if k is not None:
                paths = self.net.decode(emissions, mask, k=k).tolist()  # (B, k, L)
                for row, idx in enumerate(indices.tolist()):
                    n = int(split.lengths[idx])
                    tags[idx] = [ids_to_iob2(path[:n], names) for path in paths[row]]
                continue
            id_rows = self.net.decode(emissions, mask).tolist()
            for row, idx in enumerate(indices.tolist()):
                tags[idx] = ids_to_iob2(id_rows[row][: int(split.lengths[idx])], names)
            if with_confidence:
                self._span_probabilities(emissions, mask, indices, tags, confidence)
        return tags, confidence

    def _span_probabilities(self, emissions, mask, indices, tags, confidence) -> None:
        """The exact probability of each predicted chunk: for every chunk, the disjoint sets of
        tag paths that read as exactly that chunk (``span_cases``), each a constrained forward
        pass, all of a batch in one call."""
        names = self.vocabs.tags.tags
        rows, cases, keys = [], [], []
        for row, idx in enumerate(indices.tolist()):
            n = len(tags[idx])
            for span in conlleval_spans(tags[idx]):
                for case in span_cases(names, *span, n):
                    rows.append(row)
                    cases.append(case)
                    keys.append((idx, span))
        if not rows:
            return
        allowed = torch.ones(len(rows), *emissions.shape[1:], dtype=torch.bool)  # (N, L, K)
        for i, case in enumerate(cases):
            for position, tag_ids in case.items():
                allowed[i, position] = False
                allowed[i, position, list(tag_ids)] = True
        pick = torch.as_tensor(rows, device=emissions.device)
        log_p = self.net.path_log_prob(emissions, mask, pick, allowed.to(emissions.device))
        for (idx, span), p in zip(keys, log_p.exp().tolist(), strict=True):
            confidence[idx][span] = confidence[idx].get(span, 0.0) + p

    def tag(self, token_lists: Sequence[Sequence[str]], k: int | None = None) -> list:
        """IOB2 tags for each list of tokens: ``[["John", "lives"]] -> [["B-PER", "O"]]``.

        With ``k``, the ``k`` best tag sequences of each (CRF models): ``[[best, second, ...]]``,
        best first; the first is what ``tag`` gives without ``k``.
        """
        return self._run(token_lists, k=k)[0]

    def tag_with_confidence(
        self, token_lists: Sequence[Sequence[str]]
    ) -> tuple[list[list[str]], list[dict[tuple[str, int, int], float]]]:
        """IOB2 tags of each token list and the probability of each of its predicted chunks,
        ``{(label, first, last): p}`` (inclusive token indices)."""
        return self._run(token_lists, True)

    def predict_tokens(
        self, token_lists: Sequence[Sequence[str]], min_confidence: float = 0.0
    ) -> list[list[dict]]:
        """Entities of already tokenized sentences: ``{"text", "label", "first_token",
        "last_token", "confidence"}`` (token indices inclusive), as :meth:`predict` scores them."""
        tags, confidence = self._run(token_lists, True)
        return [
            entities(seq, tokens, confidence=conf, min_confidence=min_confidence)
            for tokens, seq, conf in zip(token_lists, tags, confidence, strict=True)
        ]

    def predict(
        self, texts: str | Sequence[str], min_confidence: float = 0.0
    ) -> list[dict] | list[list[dict]]:
        """Entities of a text (or of each text of a list).

        Each entity is ``{"text", "label", "start", "end", "confidence"}`` with character
        offsets into the input (``end`` exclusive). The confidence is the probability the model
        gives exactly that labelled span: the total probability of the tag paths that read as
        it (a constrained forward pass). Entities below ``min_confidence`` are left out.
        """
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        tokenized = [tokenize(t) for t in batch]
        tags, confidence = self._run([[tok for tok, _, _ in toks] for toks in tokenized], True)
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
