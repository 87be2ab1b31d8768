"""Entity-level precision, recall and F1, equal to seqeval's (conlleval's) scores.

:class:`EntityF1` is a torchmetrics ``Metric``: its state is three count vectors (true positives,
predicted and gold entities per type) summed across processes, so a distributed run scores
exactly what one process scores. Chunks are read with :func:`conlleval_spans`, the reading
conlleval and seqeval use, so ill-formed sequences score as they do there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from nerlab.data.conll import Sentence
from nerlab.data.tag_schemes import conlleval_spans
from nerlab.inference.tagger import Tagger

#: The metric that selects models: used by the checkpoint callback, early stopping, the sweep's
#: return value and the loggers. Spell it only here.
MONITOR = "val_f1"
MONITOR_MODE = "max"


def _prf(tp: float, pred: float, gold: float) -> tuple[float, float, float]:
    precision = tp / pred if pred > 0 else 0.0
    recall = tp / gold if gold > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


class EntityF1(Metric):
    """Micro and per-type entity scores over sequences of tag strings (any BIO-like scheme)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, types: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.types = list(types)
        self._type_index = {t: i for i, t in enumerate(self.types)}
        n = len(self.types)
        self.add_state("tp", default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("pred", default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("gold", default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        # rows: gold type of a span (last row: no gold span there); columns: predicted type
        confusion = torch.zeros(n + 1, n + 1, dtype=torch.float64)
        self.add_state("confusion", default=confusion, dist_reduce_fx="sum")

    def _type(self, name: str) -> int:
        idx = self._type_index.get(name)
        if idx is None:
            raise ValueError(f"entity type {name!r} is not among the scored types {self.types}")
        return idx

    def update(
        self, predictions: Sequence[Sequence[str]], targets: Sequence[Sequence[str]]
    ) -> None:
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predicted sequences for {len(targets)} gold ones")
        n = len(self.types)
        tp, pred, gold = [0] * n, [0] * n, [0] * n
        confusion = [[0] * (n + 1) for _ in range(n + 1)]
        for p_tags, g_tags in zip(predictions, targets, strict=True):
            if len(p_tags) != len(g_tags):
                raise ValueError(f"a predicted sequence of {len(p_tags)} tags for {len(g_tags)}")
            p_spans = set(conlleval_spans(p_tags))
            g_spans = set(conlleval_spans(g_tags))
            for span in p_spans:
                pred[self._type(span[0])] += 1
            for span in g_spans:
                gold[self._type(span[0])] += 1
            for span in p_spans & g_spans:
                tp[self._type(span[0])] += 1
            p_bounds = {(a, b): self._type(t) for t, a, b in p_spans}
            g_bounds = {(a, b): self._type(t) for t, a, b in g_spans}
            for bounds, g in g_bounds.items():
                confusion[g][p_bounds.get(bounds, n)] += 1
            for bounds, p in p_bounds.items():
                if bounds not in g_bounds:
                    confusion[n][p] += 1
        self.tp += torch.tensor(tp, dtype=torch.float64, device=self.tp.device)
        self.pred += torch.tensor(pred, dtype=torch.float64, device=self.pred.device)
        self.gold += torch.tensor(gold, dtype=torch.float64, device=self.gold.device)
        self.confusion += torch.tensor(confusion, dtype=torch.float64, device=self.confusion.device)

    def compute(self) -> dict:
        """``{"precision", "recall", "f1", "per_type": {TYPE: {precision, recall, f1, support}},
        "confusion": {"labels", "matrix"}}``; the matrix counts spans by boundaries: gold type
        (rows) against the type predicted for the same span (columns), ``-`` for none."""
        precision, recall, f1 = _prf(
            self.tp.sum().item(), self.pred.sum().item(), self.gold.sum().item()
        )
        per_type = {}
        for i, name in enumerate(self.types):
            p, r, f = _prf(self.tp[i].item(), self.pred[i].item(), self.gold[i].item())
            per_type[name] = {
                "precision": p,
                "recall": r,
                "f1": f,
                "support": int(self.gold[i].item()),
            }
        confusion = {"labels": [*self.types, "-"], "matrix": self.confusion.long().tolist()}
        return {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "per_type": per_type,
            "confusion": confusion,
        }


def score_tagger(
    tagger: Tagger, sentences: Sequence[Sentence], documents=None
) -> tuple[dict, list[list[str]]]:
    """Scores (as :meth:`EntityF1.compute`) of ``tagger`` on gold IOB2 ``sentences``, and the
    predicted IOB2 tags. Types scored: the model's plus any that only occur in the gold tags
    (counted as missed)."""
    predictions = tagger.tag([s.tokens for s in sentences], documents=documents)
    return score_predictions(tagger.entity_types, sentences, predictions), predictions


def score_predictions(
    entity_types: Sequence[str], sentences: Sequence[Sentence], predictions: Sequence[Sequence[str]]
) -> dict:
    """Scores (as :meth:`EntityF1.compute`) of IOB2 ``predictions`` against gold ``sentences``,
    over ``entity_types`` plus any type that only occurs in the gold tags."""
    types = set(entity_types)
    types.update(t[2:] for s in sentences for t in s.tags if t != "O")
    metric = EntityF1(sorted(types))
    metric.update(predictions, [s.tags for s in sentences])
    return metric.compute()


def classification_report(scores: dict) -> str:
    """A seqeval-style text table of :meth:`EntityF1.compute` output."""
    lines = [f"{'':>10} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}", ""]
    support = 0
    for name, s in scores["per_type"].items():
        support += s["support"]
        lines.append(
            f"{name:>10} {s['precision']:>9.4f} {s['recall']:>9.4f} "
            f"{s['f1']:>9.4f} {s['support']:>9d}"
        )
    lines.append("")
    lines.append(
        f"{'micro avg':>10} {scores['precision']:>9.4f} {scores['recall']:>9.4f} "
        f"{scores['f1']:>9.4f} {support:>9d}"
    )
    return "\n".join(lines) + "\n"
