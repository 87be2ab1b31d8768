"""`make active-learning-sim` / `nerlab-al-sim`: the simulated labelling loop on a labelled
corpus (:mod:`nerlab.analysis.active_learning`).

    nerlab-al-sim [data_dir=../shared/data/conll2003] [strategies=least_confidence,margin,random]
                  [seeds=1,2,3] [seed_size=500] [batch_size=500] [rounds=6]
                  [recipe=conll03_sentence] [epochs=10] [plot=docs/active-learning.png]
                  [results=docs/active-learning.json] [experiment=active-learning]
                  [tracking_uri=URI]

Every round of every (strategy, seed) is logged to MLflow; the last stdout line is JSON: the
mean test F1 per strategy and labelled count, and the labelled sentences at which each
uncertainty strategy reaches random sampling's final F1.
"""

from __future__ import annotations

import json
from pathlib import Path

from nerlab.cli.options import main_of
from nerlab.errors import NerlabError
from nerlab.files import REPO_ROOT, write_atomic


def _ints(value: str, name: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v]
    except ValueError:
        raise NerlabError(
            f"{name} must be whole numbers separated by commas, found {value!r}"
        ) from None
    if not out or min(out) < 0:
        raise NerlabError(f"{name} must be whole numbers separated by commas, found {value!r}")
    return out


def al_sim(options: dict[str, str]) -> int:
    from nerlab.analysis.active_learning import plot, simulate, summarize
    from nerlab.analysis.selection import STRATEGIES

    data_dir = Path(options.get("data_dir", REPO_ROOT.parent / "shared" / "data" / "conll2003"))
    for name in ("train.txt", "valid.txt", "test.txt"):
        if not (data_dir / name).is_file():
            raise NerlabError(f"data_dir={data_dir}: missing {name}")
    strategies = options.get("strategies", "least_confidence,margin,random").split(",")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise NerlabError(f"strategies: {unknown[0]!r} is not one of {', '.join(STRATEGIES)}")
    defaults = {"seed_size": "500", "batch_size": "500", "rounds": "6", "epochs": "10"}
    sizes = {k: _ints(options.get(k, d), k)[0] for k, d in defaults.items()}
    results = simulate(
        data_dir,
        strategies=strategies,
        seeds=_ints(options.get("seeds", "1,2,3"), "seeds"),
        seed_size=sizes["seed_size"],
        batch_size=sizes["batch_size"],
        rounds=sizes["rounds"],
        overrides=[
            f"experiment={options.get('recipe', 'conll03_sentence')}",
            f"trainer.max_epochs={sizes['epochs']}",
        ],
        tracking_uri=options.get("tracking_uri"),
        experiment=options.get("experiment", "active-learning"),
    )
    summary = summarize(results)
    if options.get("results", "docs/active-learning.json") != "none":
        rows = [r.__dict__ for r in results]
        write_atomic(options.get("results", "docs/active-learning.json"),
                     json.dumps({"summary": summary, "rounds": rows}, indent=1))  # fmt: skip
    if options.get("plot", "docs/active-learning.png") != "none":
        plot(results, options.get("plot", "docs/active-learning.png"))
    print(json.dumps(summary))
    return 0


main = main_of(
    "nerlab-al-sim",
    al_sim,
    allowed=(
        "data_dir",
        "strategies",
        "seeds",
        "seed_size",
        "batch_size",
        "rounds",
        "recipe",
        "epochs",
        "plot",
        "results",
        "experiment",
        "tracking_uri",
    ),  # fmt: skip
)


if __name__ == "__main__":
    raise SystemExit(main())
