"""Choosing what to label: exact sequence probabilities, the strategies, the near-duplicate
guard, Label Studio / doccano output and one-line errors of `make select`."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_sentences

from nerlab import Tagger
from nerlab.analysis.selection import select, uncertainty, units_from_texts
from nerlab.data.tag_schemes import convert_tags
from nerlab.inference import crf_numpy

BIN = Path(sys.executable).parent


def _brute(emissions, length, trans, start, end):
    scores = []
    for path in itertools.product(range(trans.shape[0]), repeat=length):
        s = start[path[0]] + emissions[0, path[0]] + end[path[-1]]
        s += sum(trans[path[i - 1], path[i]] + emissions[i, path[i]] for i in range(1, length))
        scores.append(s)
    return np.sort(np.asarray(scores))[::-1]


def test_two_best_sequences_are_exact_against_enumerating_every_path():
    rng = np.random.default_rng(0)
    for trial in range(40):
        batch, width, tags = 3, int(rng.integers(1, 5)), int(rng.integers(1, 4))
        emissions = rng.normal(size=(batch, width, tags))
        trans, start, end = (
            rng.normal(size=(tags, tags)),
            rng.normal(size=tags),
            rng.normal(size=tags),
        )
        if trial % 3 == 0 and tags > 1:
            trans[0, 1] = -1e4  # a forbidden transition, as the constraints add
        lengths = rng.integers(1, width + 1, size=batch)
        mask = np.arange(width)[None, :] < lengths[:, None]
        got = crf_numpy.two_best_scores(emissions, mask, trans, start, end)
        logz = crf_numpy.forward_backward(emissions, mask, trans, start, end).logz
        for b in range(batch):
            every = _brute(emissions[b], int(lengths[b]), trans, start, end)
            assert got[b, 0] == pytest.approx(every[0])
            if len(every) > 1:
                assert got[b, 1] == pytest.approx(every[1])
            else:
                assert got[b, 1] == -np.inf
            assert logz[b] == pytest.approx(np.logaddexp.reduce(every))


def test_the_taggers_sequence_probabilities_are_those_of_its_tags(trained):
    tagger = Tagger.load(trained["model_dir"])
    token_lists = [tokens for tokens, _ in make_sentences(20, seed=9)] + [[]]
    tags, confidence, paths = tagger.tag_with_uncertainty(token_lists)
    assert tags == tagger.tag(token_lists)
    # the span probabilities reuse the forward-backward messages behind log Z: the same values
    alone = tagger.tag_with_confidence(token_lists)[1]
    assert [set(c) for c in confidence] == [set(c) for c in alone]
    assert sum(map(len, confidence)) > 0
    for got, want in zip(confidence, alone, strict=True):
        assert got == pytest.approx(want, abs=1e-9)
    assert paths[-1, 0] == 0 and paths[-1, 1] == -np.inf  # an empty list: one sure sequence
    assert np.all(paths[:-1, 0] <= 0) and np.all(paths[:, 1] <= paths[:, 0])
    # log P(best) is the score of the decoded tags minus log Z, computed here from scratch
    net = tagger.net
    import torch

    from nerlab.data.batching import make_batch, to_tensors
    from nerlab.data.encoding import FormTable, encode_split

    table = FormTable(tagger.vocabs.words, tagger.vocabs.chars)
    split = encode_split([(t, ()) for t in token_lists[:5]], table, None)
    table.freeze()
    batch = make_batch(split, table, np.arange(5), memory=tagger.uses_documents)
    with torch.no_grad():
        emissions = net(to_tensors(batch, "cpu")).numpy().astype(np.float64)
    trans, start, end = (t.numpy().astype(np.float64) for t in net.crf.inference_parameters())
    index = {t: i for i, t in enumerate(tagger.vocabs.tags.tags)}
    for row in range(5):
        n = len(token_lists[row])
        path = [index[t] for t in convert_tags(tags[row], tagger.vocabs.tags.scheme, "iob2")]
        score = start[path[0]] + emissions[row, 0, path[0]] + end[path[-1]]
        score += sum(trans[path[i - 1], path[i]] + emissions[row, i, path[i]] for i in range(1, n))
        logz = crf_numpy.forward_backward(
            emissions[row : row + 1, :n], np.ones((1, n), bool), trans, start, end
        ).logz[0]
        assert paths[row, 0] == pytest.approx(score - logz, abs=1e-5)


def test_strategies_rank_and_the_guard_skips_near_duplicates():
    texts = [
        "Mary visited Paris in 1996 .",
        "mary visited paris in 2001 .",  # the same once lowercased, digits as 0
        "John works for Acme Corp in London today .",
        "John works for Acme Corp in London tomorrow .",  # 6 of 10 bigrams shared
        "Peter flew to Rome .",
    ]
    units = units_from_texts(texts, split_sentences=False)
    log_paths = np.log(np.array([[0.2, 0.19], [0.1, 0.05], [0.3, 0.01], [0.4, 0.3], [0.9, 0.05]]))
    tokens = np.array([u.tokens for u in units])
    least = uncertainty("least_confidence", log_paths, tokens)
    assert least == pytest.approx([0.8, 0.9, 0.7, 0.6, 0.1])
    margin = uncertainty("margin", log_paths, tokens)
    assert margin == pytest.approx([0.99, 0.95, 0.71, 0.9, 0.15])
    # 0 is 1 normalised; 3 shares 6 of 10 bigrams with 2 (Jaccard 0.6)
    assert select(units, least, 5, "least_confidence") == [1, 2, 3, 4]
    assert select(units, least, 5, "least_confidence", dedup=0.5) == [1, 2, 4]
    assert select(units, margin, 2, "margin") == [0, 3]
    mnlp = uncertainty("mnlp", log_paths, tokens)
    assert mnlp[4] == pytest.approx(-np.log(0.9) / 5)
    shuffled = select(units, least, 3, "random", seed=4)
    assert shuffled == select(units, least, 3, "random", seed=4) and len(shuffled) == 3


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "nerlab-select"), *args], capture_output=True, text=True, timeout=300
    )


def test_make_select_writes_label_studio_tasks_with_pre_annotations(trained, tmp_path):
    texts = [" ".join(tokens) for tokens, _ in make_sentences(60, seed=21)]
    texts += [texts[0], texts[0].upper()]  # duplicates: never chosen twice
    source = tmp_path / "pool.txt"
    source.write_text("\n".join(texts) + "\n")
    out = tmp_path / "tasks.jsonl"
    result = run(f"model_dir={trained['model_dir']}", f"input={source}", "n=8", f"output={out}")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["texts"] == 62 and summary["selected"] == 8
    tasks = [json.loads(line) for line in out.read_text().splitlines()]
    scores = [t["meta"]["score"] for t in tasks]
    assert scores == sorted(scores, reverse=True)
    assert [t["predictions"][0]["score"] for t in tasks] == [t["meta"]["p_best"] for t in tasks]
    assert len({t["data"]["text"].lower() for t in tasks}) == 8
    tagger = Tagger.load(trained["model_dir"])
    for task in tasks:
        text = task["data"]["text"]
        assert texts[task["meta"]["line"]] == text
        assert task["meta"]["score"] == pytest.approx(1 - task["meta"]["p_best"])
        spans = [
            (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0], r["score"])
            for r in task["predictions"][0]["result"]
        ]
        expected = [
            (e["start"], e["end"], e["label"], e["confidence"]) for e in tagger.predict(text)
        ]
        assert [x[:3] for x in spans] == [e[:3] for e in expected]
        assert [x[3] for x in spans] == pytest.approx([e[3] for e in expected])
        for r in task["predictions"][0]["result"]:
            assert text[r["value"]["start"] : r["value"]["end"]] == r["value"]["text"]
    # the least sure of the whole pool comes first
    _, _, paths = tagger.tag_with_uncertainty([t.split() for t in texts])
    assert tasks[0]["meta"]["line"] == int(np.argmin(paths[:, 0]))
    # doccano output and the margin strategy
    result = run(
        f"model_dir={trained['model_dir']}", f"input={source}", "n=3", f"output={out}",
        "format=doccano", "strategy=margin",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first = json.loads(out.read_text().splitlines()[0])
    assert set(first) >= {"text", "label", "score", "span_scores", "meta"}
    assert first["meta"]["strategy"] == "margin"
    assert first["score"] == pytest.approx(
        1 - (first["meta"]["p_best"] - first["meta"]["p_second"])
    )


def test_make_select_keeps_documents_whole_for_a_document_model(trained, tmp_path):
    tagger = Tagger.load(trained["model_dir"])
    assert tagger.uses_documents  # the default model reads document context
    lines = []
    for doc in range(4):
        lines += ["-DOCSTART- -X- -X- O", ""]
        for tokens, _ in make_sentences(3, seed=40 + doc):
            lines += [f"{t} NN O O" for t in tokens] + [""]
    source = tmp_path / "pool.conll"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "tasks.jsonl"
    result = run(f"model_dir={trained['model_dir']}", f"input={source}", "n=4", f"output={out}")
    assert result.returncode == 0, result.stderr
    tasks = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(t["meta"]["line"] for t in tasks) == [0, 1, 2, 3]
    assert all(t["data"]["text"].count("\n") == 2 for t in tasks)  # three sentences each


def test_make_select_errors_are_one_line_and_keep_the_output(trained, tmp_path):
    out = tmp_path / "tasks.jsonl"
    out.write_text("kept\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    model = f"model_dir={trained['model_dir']}"
    for args, message in (
        ((model, f"input={empty}", "n=3"), "no texts to select from"),
        ((model, f"input={empty}", "n=0"), "n must be a positive whole number"),
        ((model, f"input={empty}", "n=2", "strategy=entropy"), "strategy must be one of"),
        ((f"model_dir={tmp_path}", f"input={empty}", "n=2"), "model_info.json: missing"),
        ((model, f"input={tmp_path / 'nope.txt'}", "n=2"), "no such file"),
    ):
        result = run(*args, f"output={out}")
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert out.read_text() == "kept\n"


def test_the_simulated_loop_logs_every_round_and_draws_the_figure(tiny_corpus, tmp_path):
    from conftest import SMALL
    from mlflow import MlflowClient

    from nerlab.analysis.active_learning import plot, simulate, summarize

    store = f"sqlite:///{tmp_path}/al.db"
    results = simulate(
        tiny_corpus,
        strategies=("least_confidence", "random"),
        seeds=(1,),
        seed_size=30,
        batch_size=20,
        rounds=2,
        overrides=[*SMALL, "data=bio", "trainer.max_epochs=2"],
        tracking_uri=store,
        work_dir=tmp_path / "work",
    )
    assert [(r.strategy, r.round, r.labelled) for r in results] == [
        ("least_confidence", 0, 30),
        ("least_confidence", 1, 50),
        ("random", 0, 30),
        ("random", 1, 50),
    ]
    client = MlflowClient(tracking_uri=store)
    parents = client.search_runs([client.get_experiment_by_name("active-learning").experiment_id])
    assert len(parents) == 2
    history = client.get_metric_history(parents[0].info.run_id, "test_f1")
    assert sorted(m.step for m in history) == [30, 50]
    summary = summarize(results)
    assert summary["random_final"]["labelled"] == 50
    assert "least_confidence_reaches_random_final_at" in summary
    figure = plot(results, tmp_path / "al.png")
    assert figure.stat().st_size > 10_000
