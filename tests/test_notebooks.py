"""The notebooks run top to bottom (on small fixtures here, on the real data with -m slow), are
committed without outputs, and keep their logic in :mod:`nerlab.analysis`, tested here too."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import subprocess
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import CONLL_DIR, ROOT, compose_cfg, make_sentences, write_conll
from nbclient import NotebookClient

from nerlab import analysis
from nerlab.data.conll import Sentence

NOTEBOOKS = ROOT / "notebooks"
NAMES = ("01-data-exploration.ipynb", "02-training-runs.ipynb", "03-error-analysis.ipynb")

# Test entities the fixture's training split never shows, so the error analysis has errors.
UNSEEN = {"B-PER": ["Olga", "Kwame", "Ines"], "B-LOC": ["Quito", "Oslo", "Accra"]}


def _with_unseen(sentences, seed: int):
    rng = random.Random(seed)
    out = []
    for tokens, tags in sentences:
        tokens = [
            rng.choice(UNSEEN[tag]) if tag in UNSEEN and rng.random() < 0.5 else token
            for token, tag in zip(tokens, tags, strict=True)
        ]
        out.append((tokens, tags))
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """train.txt, valid.txt and test.txt; the test split has entities training never shows."""
    folder = tmp_path_factory.mktemp("corpus")
    write_conll(folder / "train.txt", make_sentences(120, seed=1))
    write_conll(folder / "valid.txt", make_sentences(30, seed=2))
    write_conll(folder / "test.txt", _with_unseen(make_sentences(40, seed=3), seed=4))
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory, corpus):
    """Two small runs trained on ``corpus`` (char CNN, char BiLSTM) in one MLflow store, tagged
    as the jobs of one sweep."""
    from mlflow import MlflowClient
    from omegaconf import open_dict

    from nerlab.training.run import train

    root = tmp_path_factory.mktemp("notebooks")
    summaries = {}
    for char, epochs in (("cnn", 3), ("lstm", 2)):
        cfg = compose_cfg(
            root,
            corpus,
            f"model.char={char}",
            f"trainer.max_epochs={epochs}",
            "optimizer.lr=0.02",
            "logger.mlflow.log_model=false",
        )
        with open_dict(cfg):
            cfg.paths.output_dir = str(root / char)
        summaries[char] = train(cfg)
    uri = f"sqlite:///{root}/mlruns.db"
    client = MlflowClient(uri)
    for job, summary in enumerate(summaries.values()):
        client.set_tag(summary["run_id"], "sweep_id", str(root / "multirun"))
        client.set_tag(summary["run_id"], "sweep_job", str(job))
    return {"root": root, "uri": uri, "runs": summaries}


def execute(name: str, tmp_path: Path, **parameters) -> nbformat.NotebookNode:
    """Run a notebook in a fresh kernel of this interpreter, from ``notebooks/``, with the
    ``parameters`` cell's values replaced (as papermill does); the executed copy is saved in
    ``tmp_path`` for inspection. A failing cell raises CellExecutionError."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "\n# injected by tests/test_notebooks.py\n" + "\n".join(
        f"{key} = {value!r}" for key, value in parameters.items()
    )
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / name)
    return nb


def texts(nb) -> str:
    """Everything a notebook printed or displayed as text or HTML."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            for mime in ("text/plain", "text/html"):
                if mime in out.get("data", {}):
                    parts.append(out.data[mime])
    return "\n".join(parts)


def images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))


@pytest.fixture
def agg(monkeypatch):
    """Kernels inherit the environment: matplotlib renders with Agg, off screen, through the
    inline backend, whose PNG outputs show that each plot was drawn (whatever MPLBACKEND the
    caller has); MLflow sends no telemetry."""
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


# ---------------------------------------------------------------------------------------------
# the notebooks as committed


def test_notebooks_are_numbered_and_committed_without_outputs():
    found = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert found == list(NAMES)
    for name in found:
        assert re.fullmatch(r"\d\d-[a-z0-9-]+\.ipynb", name)
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{name}: a cell keeps its outputs (run nbstripout)"
                assert cell.execution_count is None, f"{name}: a cell keeps its execution count"
            assert "execution" not in cell.metadata, name


def test_notebooks_take_parameters_and_hold_no_logic_of_their_own():
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and tagged[0] is code[0], f"{name}: one parameters cell, first"
        source = "\n".join(c.source for c in code)
        assert "from nerlab import" in source
        assert not re.search(r"^\s*(def|class|lambda)\b", source, re.M), name
        assert nb.metadata.kernelspec.name == "python3"


def test_make_notebook_starts_jupyter_on_the_project_environment():
    database = subprocess.run(
        ["make", "-pRrq", "-f", "Makefile"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    lines = database.splitlines()
    assert ".venv/.installed-notebook" in next(x for x in lines if x.startswith("notebook:"))
    assert ".venv/.installed" in next(
        x for x in lines if x.startswith(".venv/.installed-notebook:")
    )
    assert "notebook" in next(x for x in lines if x.startswith(".PHONY:")).split()
    command = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "-o",
            ".venv/.installed-notebook",
            "notebook",
            "port=8123",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert command.startswith(".venv/bin/jupyter lab ")
    assert f"--notebook-dir={NOTEBOOKS}" in command and "--ip=127.0.0.1 --port=8123" in command


# ---------------------------------------------------------------------------------------------
# running them on the fixture


def test_01_data_exploration_runs_on_a_fixture(corpus, tmp_path, agg):
    nb = execute("01-data-exploration.ipynb", tmp_path, DATA_DIR=str(corpus), TOP_N=3)
    out = texts(nb)
    summary = analysis.corpus_summary(analysis.read_splits(corpus)[0])
    assert summary.loc["train", "sentences"] == 120
    for row in summary.itertuples():  # the summary table as the notebook shows it
        assert re.search(rf"{row.Index}\s+{row.sentences}\s+{row.tokens}\s+{row.entities}\s", out)
    assert "iob2" in out and "oov_vectors_tokens" in out and "oov_train_entity_tokens" in out
    assert re.search(r"(London|Paris|Berlin|Tokyo|Lagos|Lima) \(\d+\)", out)  # top entities
    assert images(nb) >= 3


def test_02_training_runs_compares_the_runs_of_the_store(store, tmp_path, agg):
    nb = execute("02-training-runs.ipynb", tmp_path, MLRUNS_URI=store["uri"], PARAM="model.char")
    out = texts(nb)
    assert "2 runs in experiment 'nerlab'" in out
    for summary in store["runs"].values():
        assert summary["run_id"] in out  # the table's index: every run
    assert "model.char" in out and "trainer.max_epochs" in out  # the params that vary
    assert f"sweep: {store['root'] / 'multirun'} (2 runs); parameter: model.char" in out
    ids = [s["run_id"] for s in store["runs"].values()]
    best = analysis.with_best(pd.DataFrame({"run_id": ids}), store["uri"])
    for summary, score in zip(store["runs"].values(), best["metrics.val_f1_best"], strict=True):
        assert score == pytest.approx(summary["val_f1"])  # the tested checkpoint's val_f1
    assert "val_f1_best" in out
    top = max(s["val_f1"] for s in store["runs"].values())
    best = [s["model_dir"] for s in store["runs"].values() if s["val_f1"] == top]
    assert re.search(r"model_dir: (.+)", out).group(1) in best
    assert "micro avg" in out and "PER" in out  # the best run's per-type table
    assert images(nb) >= 2


def test_03_error_analysis_shows_where_a_model_fails(store, corpus, tmp_path, agg):
    model_dir = store["runs"]["lstm"]["model_dir"]
    nb = execute(
        "03-error-analysis.ipynb",
        tmp_path,
        MODEL_DIR=model_dir,
        DATA_DIR=str(corpus),
        N_EXAMPLES=3,
    )
    out = texts(nb)
    assert "micro avg" in out and "40 sentences" in out
    assert "boundary+type" in out and "words_seen" in out and "entity_seen" in out
    assert out.count("<b>#") == 3  # three wrong sentences rendered
    assert "gold: " in out and "pred: " in out
    assert images(nb) >= 2


# ---------------------------------------------------------------------------------------------
# the analysis behind them


def _sentence(tags: str, tokens: str | None = None) -> Sentence:
    tag_list = tags.split()
    words = tokens.split() if tokens else [f"w{i}" for i in range(len(tag_list))]
    return Sentence(words, tag_list)


def test_span_outcomes_sort_every_span_into_one_outcome():
    gold = [
        _sentence("B-PER I-PER O B-LOC O B-ORG O O"),
        _sentence("B-ORG I-ORG I-ORG O B-MISC O"),
    ]
    pred = [
        "B-PER I-PER O B-ORG O O O B-LOC".split(),  # correct, type, missed, spurious
        "B-ORG I-ORG O O B-PER I-PER".split(),  # boundary, boundary+type
    ]
    table = analysis.span_outcomes(gold, pred)
    got = sorted(
        zip(table.sentence, table.gold, table.pred, table.outcome.astype(str), strict=True)
    )
    assert got == [
        (0, "", "LOC", "spurious"),
        (0, "LOC", "ORG", "type"),
        (0, "ORG", "", "missed"),
        (0, "PER", "PER", "correct"),
        (1, "MISC", "PER", "boundary+type"),
        (1, "ORG", "ORG", "boundary"),
    ]
    counts = analysis.outcome_counts(table, "gold")
    assert counts.loc["PER", "correct"] == 1 and counts.loc["ORG", "errors"] == 2
    assert counts.loc["LOC", "spurious"] == 1  # spurious spans count by predicted type
    assert counts.loc["ORG", "recall"] == 0.0 and counts.loc["PER", "recall"] == 1.0
    confusion = analysis.type_confusion(table)
    assert confusion.loc["ORG", "-"] == 1 and confusion.loc["-", "LOC"] == 1
    assert confusion.loc["MISC", "PER"] == 1 and int(confusion.to_numpy().sum()) == len(table)


def test_span_outcomes_know_which_words_training_saw():
    from nerlab.data.vocab import WordVocab

    vocab = WordVocab.build([["John", "Paris"]])
    vocab.add("Quito")  # from the pretrained vectors: count 0, not seen in training
    sentences = [_sentence("B-PER O B-LOC I-LOC B-LOC", "John in Paris Quito Quito")]
    predictions = [["B-PER", "O", "O", "O", "O"]]
    table = analysis.span_outcomes(sentences, predictions, vocab, {"John"})
    assert list(table.words_seen) == ["all", "some", "none"]
    assert list(table.entity_seen) == [True, False, False]
    html = analysis.render_sentences(sentences, predictions, [0])
    assert "Paris Quito" in html and html.count("solid #d62728") == 3  # legend + 2 missed


def test_oov_rates_against_train_and_vectors(tmp_path):
    class Vectors:
        def __contains__(self, word):
            return word.lower() in {"paris", "the"}

    splits = {
        "train": [_sentence("B-PER O", "John left")],
        "test": [_sentence("B-LOC O O O", "Paris the 1996 John")],
    }
    oov = analysis.oov_rates(splits, Vectors())
    row = oov.loc["test"]
    assert row.tokens == 4
    assert row.oov_train_tokens == 0.75  # John is known; 1996 (0000) is not
    assert row.oov_train_entity_tokens == 1.0
    assert row.oov_vectors_tokens == 0.5  # 1996 and John have no vector
    assert row.oov_neither_tokens == 0.25  # 1996 only
    assert list(oov.index) == ["test"]


def test_runs_helpers_pick_varying_params_the_sweep_and_the_best_run():
    runs = pd.DataFrame(
        {
            "run_id": ["a" * 32, "b" * 32, "c" * 32],
            "status": ["FINISHED", "FINISHED", "RUNNING"],
            "start_time": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]),
            "params.model.char": ["cnn", "lstm", "lstm"],
            "params.paths.output_dir": ["x", "y", "z"],
            "params.model/char": ["cnn", "lstm", "lstm"],
            "params.seed": ["1", "1", "1"],
            "metrics.val_f1": [0.8, 0.9, 0.95],
            "metrics.test_f1": [0.7, 0.85, None],
            "metrics.test_f1_PER": [0.6, 0.8, None],
            "metrics.test_support_PER": [10, 10, None],
            "tags.sweep_id": ["s1", "s1", None],
            "tags.mlflow.runName": ["nerlab model.char=cnn", "nerlab model.char=lstm", "nerlab"],
        }
    )
    assert analysis.varying_params(runs) == ["model.char"]
    sweep, sweep_id = analysis.select_sweep(runs)
    assert sweep_id == "s1" and list(sweep.run_id) == ["a" * 32, "b" * 32]
    assert analysis.select_sweep(runs, "")[1] is None
    best = analysis.best_run(runs)  # the running run has no test_f1 yet
    assert best.run_id == "b" * 32
    scores = analysis.per_type_scores(best)
    assert scores.loc["PER", "f1"] == 0.8 and scores.loc["micro avg", "f1"] == 0.85
    effect = analysis.param_effect(runs, "model.char")
    assert effect.loc["lstm", "runs"] == 2 and effect.loc["lstm", "max"] == 0.95
    assert analysis.run_labels(runs)["a" * 32] == "aaaaaaaa model.char=cnn"
    table = analysis.runs_table(runs)
    assert list(table.index) == ["c" * 32, "b" * 32, "a" * 32]
    assert list(table.columns) == ["status", "start_time", "model.char", "val_f1", "test_f1"]


def test_a_missing_store_is_refused_not_created(tmp_path):
    with pytest.raises(FileNotFoundError, match="no MLflow store"):
        analysis.search_runs(f"sqlite:///{tmp_path}/nothing.db")
    assert not (tmp_path / "nothing.db").exists()


# ---------------------------------------------------------------------------------------------
# the real data, when it is there


@pytest.mark.slow
def test_01_runs_on_the_real_data(tmp_path, agg):
    if not (CONLL_DIR / "train.txt").exists():
        pytest.skip("the real CoNLL-2003 data is not beside the repository")
    out = texts(execute("01-data-exploration.ipynb", tmp_path))  # its default DATA_DIR
    assert re.search(r"train\s+14041\s+203621\s+23499", out)


@pytest.mark.slow
def test_02_runs_on_the_real_store(tmp_path, agg):
    real = ROOT / "mlruns.db"
    if not real.exists():
        pytest.skip("no mlruns.db: no training run yet")
    copy = tmp_path / "mlruns.db"  # a consistent copy: a training may be writing the store
    with sqlite3.connect(real) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    finished = sqlite3.connect(copy).execute(
        "select count(*) from runs join experiments using (experiment_id) "
        "join metrics using (run_uuid) where experiments.name = 'nerlab' "
        "and metrics.key = 'test_f1'"
    )
    if finished.fetchone()[0] == 0:
        pytest.skip("no tested run in the store yet")
    out = texts(execute("02-training-runs.ipynb", tmp_path, MLRUNS_URI=f"sqlite:///{copy}"))
    assert "best run:" in out and "micro avg" in out


@pytest.mark.slow
def test_03_runs_on_the_real_data_and_latest_model(tmp_path, agg):
    model_dir = analysis.latest_model_dir()
    if model_dir is None or not (CONLL_DIR / "train.txt").exists():
        pytest.skip("needs the real CoNLL-2003 data and a model trained with make train")
    info = json.loads((model_dir / "model_info.json").read_text())
    if "LOC" not in json.dumps(info):
        pytest.skip(f"{model_dir} is not a CoNLL-2003 model")
    out = texts(execute("03-error-analysis.ipynb", tmp_path))  # its defaults
    assert "3453 sentences" in out and "micro avg" in out
