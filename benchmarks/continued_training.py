"""Forgetting when a new entity type is added by continued training (``init_from``)::

    python -m benchmarks.continued_training --data-dir ../shared/data/conll2003 --out DIR

1. ``old``: the sentence-level recipe trained on CoNLL-2003 with MISC removed (tagged O): a
   model that never saw MISC;
2. ``continued``: ``init_from=old`` on the new data, the training sentences that contain a MISC
   entity (every type labelled), ``epochs`` epochs;
3. ``continued_rehearsal``: the same, rehearsing ``rehearse`` sentences of the old data;
4. ``scratch``: the sentence-level recipe trained from scratch on the union (all of train).

Each is scored on the test split: micro F1 over the old types (LOC, ORG, PER; MISC removed from
gold and predictions alike), and MISC's F1. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RECIPE = ["experiment=conll03_sentence", "trainer.enable_progress_bar=false"]


def _strip(sentences, entity_type: str):
    from nerlab.data.conll import Sentence

    return [
        Sentence(
            s.tokens, ["O" if t.endswith(f"-{entity_type}") else t for t in s.tags], s.line, s.doc
        )
        for s in sentences
    ]


def _write(path: Path, sentences) -> None:
    from nerlab.data.conll import write_conll

    write_conll(path, ([(t, g) for t, g in zip(s.tokens, s.tags, strict=True)] for s in sentences))


def _train(folder: Path, data: Path, *overrides: str) -> dict:
    from nerlab.training.config import compose
    from nerlab.training.run import train

    cfg = compose(
        [
            "data=bio",
            f"data.dir={data}",
            f"paths.root_dir={folder}",
            "logger.mlflow.log_model=false",
            *RECIPE,
            *overrides,
        ],
        output_dir=folder / "run",
    )
    return train(cfg)


def _scores(model_dir: str, test) -> dict:
    from seqeval.metrics import classification_report, f1_score

    from nerlab import Tagger

    tagger = Tagger.load(model_dir, batch_size=256)
    predicted = tagger.tag([s.tokens for s in test])
    gold = [s.tags for s in test]

    def drop(seqs):
        return [["O" if t.endswith("-MISC") else t for t in seq] for seq in seqs]

    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    return {
        "old_types_f1": f1_score(drop(gold), drop(predicted)),
        "misc_f1": report.get("MISC", {}).get("f1-score", 0.0),
        "per_type": {k: v["f1-score"] for k, v in report.items() if k.isupper()},
    }


def main(argv: list[str] | None = None) -> None:
    from nerlab.data.conll import read_conll, to_iob2

    parser = argparse.ArgumentParser(prog="python -m benchmarks.continued_training")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rehearse", type=int, default=3000)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    data, out = Path(args.data_dir).resolve(), Path(args.out).resolve()
    split = {}
    for name in ("train", "valid", "test"):
        split[name], _, _ = to_iob2(read_conll(data / f"{name}.txt"), data / f"{name}.txt")
    old_dir, new_dir = out / "old-data", out / "new-data"
    for folder in (old_dir, new_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "valid", "test"):
        _write(old_dir / f"{name}.txt", _strip(split[name], "MISC"))
    with_misc = [s for s in split["train"] if any(t.endswith("-MISC") for t in s.tags)]
    _write(new_dir / "train.txt", with_misc)
    for name in ("valid", "test"):
        _write(new_dir / f"{name}.txt", split[name])
    results = {"new_train_sentences": len(with_misc)}
    old = _train(out / "old", old_dir)
    runs = {
        "old": old,
        "continued": _train(
            out / "continued",
            new_dir,
            f"init_from={old['model_dir']}",
            f"trainer.max_epochs={args.epochs}",
        ),  # fmt: skip
        "continued_rehearsal": _train(
            out / "continued_rehearsal",
            new_dir,
            f"init_from={old['model_dir']}",
            f"trainer.max_epochs={args.epochs}",
            f"data.rehearse_file={old_dir / 'train.txt'}",
            f"data.rehearse_sentences={args.rehearse}",
        ),  # fmt: skip
        "scratch": _train(out / "scratch", data),
    }
    for name, summary in runs.items():
        results[name] = {
            **_scores(summary["model_dir"], split["test"]),
            "epochs": summary["epochs"],
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
