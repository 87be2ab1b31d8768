"""EntityF1 equals seqeval, also on ill-formed sequences, and syncs as plain sums."""

from __future__ import annotations

import random

import pytest
from seqeval.metrics import classification_report as seqeval_report
from seqeval.metrics import f1_score, precision_score, recall_score

from nerlab.training.metrics import EntityF1, classification_report

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "E-PER", "S-LOC"]


def random_sequences(rng: random.Random, n: int, tags=TAGS):
    gold, pred = [], []
    for _ in range(n):
        length = rng.randint(1, 12)
        g = [rng.choice(tags) for _ in range(length)]
        p = [t if rng.random() < 0.6 else rng.choice(tags) for t in g]
        gold.append(g)
        pred.append(p)
    return gold, pred


@pytest.mark.parametrize("seed", range(5))
def test_matches_seqeval_on_random_and_ill_formed_sequences(seed):
    rng = random.Random(seed)
    gold, pred = random_sequences(rng, 200)
    metric = EntityF1(["LOC", "ORG", "PER"])
    for i in range(0, 200, 37):  # several updates, as batches arrive
        metric.update(pred[i : i + 37], gold[i : i + 37])
    scores = metric.compute()
    assert scores["f1"] == pytest.approx(f1_score(gold, pred), abs=1e-12)
    assert scores["precision"] == pytest.approx(precision_score(gold, pred), abs=1e-12)
    assert scores["recall"] == pytest.approx(recall_score(gold, pred), abs=1e-12)
    per_type = seqeval_report(gold, pred, output_dict=True)
    for name in ("LOC", "ORG", "PER"):
        assert scores["per_type"][name]["f1"] == pytest.approx(
            per_type[name]["f1-score"], abs=1e-12
        )
        assert scores["per_type"][name]["support"] == per_type[name]["support"]


def test_split_states_summed_equal_one_pass():
    """What a distributed run does: each process counts its shard, the sums are combined."""
    rng = random.Random(9)
    gold, pred = random_sequences(rng, 100, TAGS[:7])
    whole = EntityF1(["LOC", "ORG", "PER"])
    whole.update(pred, gold)
    parts = [EntityF1(["LOC", "ORG", "PER"]) for _ in range(2)]
    parts[0].update(pred[::2], gold[::2])
    parts[1].update(pred[1::2], gold[1::2])
    for name in ("tp", "pred", "gold"):
        assert (getattr(parts[0], name) + getattr(parts[1], name)).tolist() == getattr(
            whole, name
        ).tolist()


def test_perfect_and_empty_predictions_and_report():
    metric = EntityF1(["PER"])
    metric.update([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])
    assert metric.compute()["f1"] == 1.0
    metric.reset()
    metric.update([["O", "O"]], [["B-PER", "O"]])
    scores = metric.compute()
    assert scores["f1"] == 0.0 and scores["per_type"]["PER"]["support"] == 1
    report = classification_report(scores)
    assert "PER" in report and "micro avg" in report


def test_unknown_type_and_length_mismatch_are_errors():
    metric = EntityF1(["PER"])
    with pytest.raises(ValueError, match="entity type 'LOC' is not among"):
        metric.update([["B-LOC"]], [["O"]])
    with pytest.raises(ValueError, match="a predicted sequence of 1 tags for 2"):
        metric.update([["O"]], [["O", "O"]])


def test_confusion_counts_type_errors_misses_and_spurious_spans():
    metric = EntityF1(["LOC", "PER"])
    metric.update(
        [["B-LOC", "O", "B-PER", "I-PER", "O", "B-PER"]],
        [["B-PER", "O", "B-PER", "I-PER", "B-LOC", "O"]],
    )
    confusion = metric.compute()["confusion"]
    assert confusion["labels"] == ["LOC", "PER", "-"]
    # gold PER read as LOC; gold PER right; gold LOC missed; a spurious PER
    assert confusion["matrix"] == [[0, 0, 1], [1, 1, 0], [0, 1, 0]]


def test_expected_calibration_error_by_hand(tmp_path):
    from nerlab.analysis.calibration import calibration, reliability_plot

    # bin [0.1, 0.2): two spans at 0.15, one right -> |0.5 - 0.15|; bin [0.9, 1.0]: three at
    # 0.95 and one at exactly 1.0 (the last bin is closed), all right -> |1 - 0.9625|
    probabilities = [0.15, 0.15, 0.95, 0.95, 0.95, 1.0]
    correct = [True, False, True, True, True, True]
    result = calibration(probabilities, correct, bins=10)
    assert result["spans"] == 6
    assert [(b["lower"], b["spans"]) for b in result["bins"]] == [(0.1, 2), (0.9, 4)]
    expected = 2 / 6 * abs(0.5 - 0.15) + 4 / 6 * abs(1.0 - 0.9625)
    assert result["ece"] == pytest.approx(expected)
    assert calibration([0.7] * 10, [True] * 7 + [False] * 3)["ece"] == pytest.approx(0.0)
    assert calibration([], [])["ece"] == 0.0
    with pytest.raises(ValueError, match="2 probabilities for 1 outcomes"):
        calibration([0.1, 0.2], [True])
    png = reliability_plot(result, tmp_path / "rel.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
