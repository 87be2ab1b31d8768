"""The benchmark suite's pieces that do not depend on timing: FLOP counting, options, the
table, each part's keys and rows, the epoch figures of the training part, and the contract of
``python -m benchmarks`` (last stdout line, results file). Nothing here asserts on a speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from benchmarks import flair_bench, infer_bench, spacy_bench, train_bench
from benchmarks.__main__ import collect, headline, run_part
from benchmarks.context import Context
from benchmarks.epochs import steady
from benchmarks.flops import achieved, char_positions, flops_per_token
from benchmarks.options import UsageError, parse_options
from benchmarks.parts import PART_NAMES, PARTS
from benchmarks.parts.part import Measurement, Part
from benchmarks.peers import ChildFailed, peer_has
from benchmarks.report import Row, table

ROOT = Path(__file__).resolve().parents[1]
#: the keys of the contract's `make bench` row (../shared/CONTRACT.md)
CONTRACT_KEYS = (
    "train_sentences_per_s",
    "flair_train_sentences_per_s",
    "train_vs_flair",
    "infer_tokens_per_s",
    "spacy_infer_tokens_per_s",
    "flair_infer_tokens_per_s",
    "crf_nll_speedup",
    "crf_viterbi_speedup",
    "train_peak_rss_mb",
    "infer_cold_start_s",
    "infer_peak_rss_mb",
    "onnx_infer_tokens_per_s",
    "onnx_int8_infer_tokens_per_s",
    "onnx_int8_batch1_p50_ms",
    "serve_requests_per_s",
    "serve_p99_ms",
    "network_infer_tokens_per_s",
    "crf_torch_nll_sentences_per_s",
)
#: those of them that come from a peer: `peers=false` leaves them out
CONTRACT_PEER_KEYS = (
    "flair_train_sentences_per_s",
    "train_vs_flair",
    "spacy_infer_tokens_per_s",
    "flair_infer_tokens_per_s",
    "crf_nll_speedup",
    "crf_viterbi_speedup",
)
OURS_KEYS = tuple(k for k in CONTRACT_KEYS if k not in CONTRACT_PEER_KEYS)
DEFAULT_MODEL = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / "bilstm_crf.yaml"))


# ----------------------------------------------------------------------------- FLOPs
def test_flops_of_the_default_model_are_positive_and_training_costs_more():
    counts = flops_per_token(DEFAULT_MODEL, num_tags=17)
    for part in ("char_encoder", "bilstm", "projection", "crf_forward", "crf_viterbi"):
        assert counts[part] > 0, part
    assert counts["training"] > 2 * counts["inference"] > 0
    # 4 gates x (in + hidden) x hidden x 2 flops x 2 directions, in = 50 words + 50 char filters
    assert counts["bilstm"] >= 4 * (100 + 100) * 100 * 2 * 2


@pytest.mark.parametrize("char", ["cnn", "lstm", "none"])
def test_flops_grow_with_the_lstm_size(char):
    small = flops_per_token({**DEFAULT_MODEL, "char": char, "entity_tagger_lstm_dims": 50}, 17)
    large = flops_per_token({**DEFAULT_MODEL, "char": char, "entity_tagger_lstm_dims": 200}, 17)
    for key in ("bilstm", "projection", "inference", "training"):
        assert large[key] > small[key] > 0, key
    deeper = flops_per_token({**DEFAULT_MODEL, "char": char, "lstm_layers": 2}, 17)
    assert deeper["bilstm"] > flops_per_token({**DEFAULT_MODEL, "char": char}, 17)["bilstm"]


def test_flops_count_the_char_encoder_and_the_crf():
    no_char = flops_per_token({**DEFAULT_MODEL, "char": "none"}, 17)
    assert no_char["char_encoder"] == 0
    more_chars = flops_per_token(DEFAULT_MODEL, 17, char_positions_per_token=16.0)
    assert more_chars["char_encoder"] == 2 * flops_per_token(DEFAULT_MODEL, 17)["char_encoder"]
    assert (
        flops_per_token(DEFAULT_MODEL, 17)["crf_viterbi"]
        > flops_per_token(DEFAULT_MODEL, 9)["crf_viterbi"]
    )


def test_char_positions_count_padded_columns_and_real_characters():
    batch = {
        "mask": torch.tensor([[True, True, False], [True, True, True]]),  # 5 tokens
        "char_ids": torch.zeros(4, 6, dtype=torch.long),  # 4 forms, 6 columns
        "char_lengths": torch.tensor([6, 2, 3, 4]),
    }
    got = char_positions([batch, batch])
    assert got == {"char_positions_per_token": 24 / 5, "chars_per_token": 15 / 5}


def test_achieved_rate_and_fraction_of_peak():
    assert achieved(1e6, 2000.0, 10.0) == {"gflops": 2.0, "peak_fraction": 0.2}
    assert achieved(1e6, None, 10.0) == {"gflops": None, "peak_fraction": None}


# ----------------------------------------------------------------------------- options, table
def test_options_parse_and_unknown_keys_are_refused(tmp_path):
    options = parse_options([f"data_dir={tmp_path}", "quick=true", "peers=false", "threads=1"])
    assert options["data_dir"] == tmp_path
    assert options["quick"] is True and options["peers"] is False and options["threads"] == 1
    with pytest.raises(UsageError, match="colour"):
        parse_options(["colour=red"])
    with pytest.raises(UsageError, match="quick"):
        parse_options(["quick=maybe"])
    with pytest.raises(UsageError, match="parts"):
        parse_options(["parts=data,everything"])


def test_table_puts_each_figure_beside_its_peer_with_the_ratio():
    text = table(
        [
            Row("CRF NLL (sentences/s)", 3000.0, "pytorch-crf", 1000.0, 3.0),
            Row("train (sentences/s)", 50.0, "flair", None, None, "flair: peer not installed"),
            Row("model directory (MB)", 5.5),
        ]
    )
    lines = text.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == ["figure", "nerlab", "peer", "ratio"]
    assert "3,000" in lines[2] and "pytorch-crf 1,000" in lines[2] and "3.00x" in lines[2]
    assert "flair n/a" in lines[3] and lines[3].rstrip().endswith("n/a")
    assert "flair: peer not installed" in text


# ----------------------------------------------------------------------------- parts: keys, rows
def _crf_result(scale: float) -> dict:
    return {
        "ours_numba_nll_sps": 50_000.0 * scale,
        "ours_numba_viterbi_sps": 500_000.0 * scale,
        "ours_torch_nll_sps": 20_000.0 * scale,
        "pytorch_crf_nll_sps": 4_000.0 * scale,
        "pytorch_crf_viterbi_sps": 13_000.0 * scale,
    }


#: what each measurement returns, in the shapes the real ones have
FAKE_RESULTS = {
    "data": {"train_seconds": 0.9, "setup_seconds": 1.2},
    "crf": {"results": {"9": _crf_result(1.0), "17": _crf_result(0.7)}, "torch_threads": 2},
    "optim": {
        "fused_nadam_steps_per_s": 800.0,
        "torch_nadam_foreach_steps_per_s": 400.0,
        "speedup": 2.0,
    },
    "train": {
        "sentences_per_s": 1000.0,
        "tokens_per_s": 14_500.0,
        "train_seconds": 14.0,
        "val_seconds": 1.5,
        "epochs_run": 2,
        "full_epoch": True,
        "figure": "epoch 2",
        "peak_rss_mb": 1100.0,
        "torch_threads": 2,
    },
    "train_default": {
        "sentences_per_s": 400.0,
        "train_seconds": 35.0,
        "val_seconds": 2.5,
        "epochs_run": 2,
        "full_epoch": True,
        "figure": "epoch 2",
        "model": "default",
        "peak_rss_mb": 1300.0,
    },
    "spacy_component": {
        "texts": 3453,
        "batch_size": 256,
        "component_texts_per_s": 950.0,
        "predict_texts_per_s": 1000.0,
        "overhead": 0.05,
    },
    "spark": {
        "texts": 34530,
        "spark_texts_per_s": 800.0,
        "predict_texts_per_s": 1000.0,
        "spark_vs_predict": 0.8,
        "same_entities": True,
    },
    "train_bare": {
        "sentences_per_s": 1500.0,
        "tokens_per_s": 21_000.0,
        "fit_seconds": 9.4,
        "torch_threads": 2,
    },
    "flair_train": {
        "sentences_per_s": 160.0,
        "sentences": 14041,
        "train_seconds": 88.0,
        "epochs_run": 2,
        "figure": "epoch 2",
        "batch_size": 32,
        "torch_threads": 2,
    },
    "infer": {
        "tokens_per_s": 100_000.0,
        "batch1_tokens_per_s": 7_000.0,
        "batch1_p50_ms": 2.0,
        "batch1_p99_ms": 3.0,
        "batch_size": 256,
        "torch_threads": 2,
    },
    "network_infer": {
        "tokens_per_s": 200_000.0,
        "batch1_tokens_per_s": 9_000.0,
        "batch_size": 256,
        "torch_threads": 2,
    },
    "spacy_infer": {
        "tokens_per_s": 20_000.0,
        "threads": 1,
        "components": ["tok2vec", "ner"],
        "batch_size": 256,
        "ner_only_tokens_per_s": 25_000.0,
    },
    "flair_infer": {
        "tokens_per_s": 10_000.0,
        "torch_threads": 2,
        "batch_size": 32,
        "batch256_tokens_per_s": 12_000.0,
    },
    "size": {"mb": 5.9, "tagger_cold_start_s": 1.1, "tagger_peak_rss_mb": 300.0},
    "flops": {
        "peak": {"gflops": 300.0},
        "train_per_token": {"training": 1.2e6},
        "infer_per_token": {"inference": 0.4e6},
    },
    "onnx": {
        "onnx": {
            "tokens_per_s": 150_000.0,
            "batch1_p50_ms": 1.0,
            "batch1_p99_ms": 1.5,
            "model_bytes": 6_000_000,
            "agreement_with_torch": 1.0,
        },
        "onnx_int8": {
            "tokens_per_s": 200_000.0,
            "batch1_p50_ms": 0.5,
            "batch1_p99_ms": 0.8,
            "model_bytes": 2_000_000,
            "agreement_with_torch": 0.99,
        },
        "onnx_int8_process": {"peak_rss_mb": 80.0, "cold_start_s": 0.2, "torch_imported": False},
    },
    "serve": {"requests_per_s": 1000.0, "p50_ms": 10.0, "p99_ms": 20.0, "errors": 0},
    "overhead": {
        "variants": {
            name: {"train_seconds": seconds, "vs_loop": seconds / 5.0, "epochs": [6.0, seconds]}
            for name, seconds in (
                ("as_run", 5.2),
                ("bar_every_batch", 6.5),
                ("no_progress_bar", 5.1),
                ("no_mlflow", 5.15),
                ("loop_only", 5.0),
            )
        }
    },
    "vocab": {
        "runs": [
            {"words": w, "sparse_rows": rows, "us_per_token": t, "vs_smallest": t / small}
            for rows, small, sizes in (
                (True, 40.0, (40.0, 41.0, 44.0)),
                (False, 50.0, (50.0, 90.0, 300.0)),
            )
            for w, t in zip((25_000, 100_000, 400_000), sizes, strict=True)
        ]
    },
}


def _fake_context(tmp_path, *options: str) -> Context:
    ctx = Context(parse_options([f"data_dir={tmp_path}", *options]))
    ctx.results = {name: dict(result) for name, result in FAKE_RESULTS.items()}
    return ctx


def test_every_measurement_of_every_part_has_a_fake_result():
    names = {m.name for part in PARTS for m in part.measurements}
    assert names == set(FAKE_RESULTS)
    order = ("data", "crf", "optim", "train", "overhead", "vocab", "infer", "size", "flops")
    order = (*order, "onnx", "serve", "integrations")
    assert PART_NAMES == order


def test_each_parts_keys_reach_the_json_line_and_its_rows_the_table(tmp_path):
    ctx = _fake_context(tmp_path)
    keys, rows = collect(ctx)
    # one figure per thing: no part's key overwrites another's
    earlier: dict = {}
    for part in PARTS:
        own = part.keys(ctx, dict(earlier))
        assert own, part.name
        assert not set(own) & set(earlier), (part.name, set(own) & set(earlier))
        assert set(part.peer_keys) <= set(own), part.name
        earlier.update(own)
        part_rows = part.rows(ctx, keys)
        assert part_rows, part.name
        for row in part_rows:  # every row shows a measured figure, and its peer's when it has one
            assert row.ours is not None, row.figure
            if row.peer_name:
                assert row.peer is not None and row.ratio is not None, row.figure
    summary = headline(ctx, keys)
    for key, value in keys.items():
        assert key in summary and summary[key] == value, key
        assert value is not None, key
    assert set(CONTRACT_KEYS) <= set(summary)
    figures = table(rows).split("\n\nnotes:")[0].splitlines()[2:]
    assert [row.figure for row in rows] == [line.split("|")[0].strip() for line in figures]
    assert summary["threads"]["train"] == 2 and summary["threads"]["spacy_infer"] == 1
    assert summary["quick"] is False


def test_overhead_and_vocabulary_keys(tmp_path):
    keys, _ = collect(_fake_context(tmp_path))
    assert keys["overhead_as_run_epoch_seconds"] == 5.2
    assert keys["overhead_bar_every_batch_vs_loop"] == pytest.approx(1.3)
    assert keys["vocab_400k_rows_vs_smallest"] == pytest.approx(1.1)
    assert keys["vocab_400k_dense_vs_smallest"] == pytest.approx(6.0)
    assert keys["vocab_25k_dense_us_per_token"] == 50.0


def test_the_overhead_variants_change_one_thing_each():
    from benchmarks.overhead_bench import VARIANTS

    assert VARIANTS["as_run"] == []
    assert VARIANTS["no_progress_bar"] == ["trainer.enable_progress_bar=false"]
    assert "~logger.mlflow" in VARIANTS["no_mlflow"] and "~logger.mlflow" in VARIANTS["loop_only"]


def test_peers_false_leaves_the_peer_keys_out_and_says_why(tmp_path):
    ctx = _fake_context(tmp_path, "peers=false")
    ctx.check_peers({"flair": ("flair",), "spacy": ("spacy",)})
    for name in ("flair_train", "spacy_infer", "flair_infer"):
        ctx.results[name] = None
    keys, rows = collect(ctx)
    summary = headline(ctx, keys)
    assert set(OURS_KEYS) <= set(summary)
    assert not set(CONTRACT_PEER_KEYS) & set(summary)
    assert not any(k.startswith(("flair_", "spacy_")) or "pytorch_crf" in k for k in summary)
    assert summary["infer_tokens_per_s"] == 100_000.0
    assert "flair: peers skipped (peers=false)" in table(rows)
    assert "spaCy: peers skipped (peers=false)" in table(rows)


def test_peer_figures_fill_the_ratios_and_the_table(tmp_path):
    ctx = _fake_context(tmp_path)
    keys, rows = collect(ctx)
    s = headline(ctx, keys)
    assert s["flair_train_sentences_per_s"] == 160.0 and s["flair_train_sentences"] == 14041
    assert s["train_vs_flair"] == pytest.approx(1000 / 160)
    assert s["train_real_vs_bare"] == pytest.approx(1000 / 1500)
    assert s["infer_vs_spacy"] == pytest.approx(5.0)
    assert s["infer_vs_flair"] == pytest.approx(10.0)
    assert s["crf_nll_speedup"] == pytest.approx(50_000 / 4_000)
    assert s["crf_torch_nll_sentences_per_s"] == 20_000.0
    assert s["crf_k17_torch_nll_sentences_per_s"] == pytest.approx(14_000.0)
    assert s["threads"] == {
        "crf": 2,
        "train": 2,
        "train_bare": 2,
        "flair_train": 2,
        "infer": 2,
        "network_infer": 2,
        "spacy_infer": 1,
        "flair_infer": 2,
    }
    text = table(rows)
    assert "flair 160" in text and "6.25x" in text
    assert "spaCy 20,000" in text and "5.00x" in text
    assert "flair 10,000" in text and "10.00x" in text
    assert "flair: ModelTrainer.train, 2 epochs of 14041 sentences (epoch 2), batches of 32" in text
    assert "CRF NLL fwd+bwd K=9, torch backend on the CPU (sentences/s)" in text
    # the spaCy component's ratio is its texts/s over Tagger.predict's: 950 / 1000
    (component,) = [r for r in rows if r.figure.startswith("spaCy component")]
    assert component.ratio == pytest.approx(0.95)


def test_the_headline_inference_figure_is_the_tagger_and_the_network_one_is_secondary(tmp_path):
    ctx = _fake_context(tmp_path)
    keys, rows = collect(ctx)
    assert keys["infer_tokens_per_s"] == FAKE_RESULTS["infer"]["tokens_per_s"]
    assert keys["network_infer_tokens_per_s"] == FAKE_RESULTS["network_infer"]["tokens_per_s"]
    assert keys["infer_tokens_per_s_batch1"] == FAKE_RESULTS["infer"]["batch1_tokens_per_s"]
    # the ratios against the peers and the exported tagger are on the Tagger's figure
    assert keys["infer_vs_spacy"] == pytest.approx(100_000 / 20_000)
    assert keys["onnx_int8_vs_torch"] == pytest.approx(200_000 / 100_000)
    assert keys["infer_gflops"] == pytest.approx(0.4e6 * 200_000 / 1e9)  # the network's FLOPs
    assert keys["train_gflops"] == pytest.approx(1.2e6 * 21_000 / 1e9)  # the bare loop's
    assert not any(k.startswith("torch_tagger") for k in keys)  # one figure per thing
    by_figure = {row.figure: row for row in rows}
    assert by_figure["infer: Tagger.tag, batch 256 (tokens/s)"].ours == 100_000.0
    network = [row for row in rows if row.figure.startswith("infer: network only")]
    assert network and network[0].ours == 200_000.0 and "encoded batches" in network[0].figure
    assert by_figure["tagger ONNX int8: batch 256 (tokens/s)"].peer == 100_000.0


def test_the_tagger_figure_times_tagger_tag_on_token_lists(monkeypatch, tmp_path):
    import nerlab

    calls: list = []

    class FakeTagger:
        @classmethod
        def load(cls, model_dir, **kwargs):
            calls.append(("load", model_dir, kwargs))
            return cls()

        def tag(self, token_lists):
            calls.append(("tag", len(token_lists)))
            return [["O"] * len(tokens) for tokens in token_lists]

    monkeypatch.setattr(nerlab, "Tagger", FakeTagger)
    sentences = [["John", "lives", "in", "London"], ["Hi"], ["a"] * 20]
    got = infer_bench.run_tagger(tmp_path, sentences, repeats=2, calls=5, threads=1)
    assert calls[0] == ("load", tmp_path, {"batch_size": 256, "threads": 1})
    assert ("tag", 3) in calls  # the batched passes: every sentence in one call
    assert got["tokens"] == 25 and got["sentences"] == 3 and got["batch_size"] == 256
    assert got["tokens_per_s"] > 0 and got["batch1_tokens"] == 25
    assert got["batch1_p50_ms"] > 0 and got["call"].startswith("Tagger.load")


def test_a_missing_peer_leaves_none_with_its_reason(tmp_path, monkeypatch):
    from benchmarks import peers

    monkeypatch.setattr(peers, "peer_python", lambda: None)
    with pytest.raises(ChildFailed, match="make peers"):
        flair_bench.run("train", tmp_path, epochs=1)
    with pytest.raises(ChildFailed, match="make peers"):
        spacy_bench.run(tmp_path)
    # peers=true, but no peers' venv: the peer keys are there, None, with the reason
    ctx = Context(parse_options([f"data_dir={tmp_path}", "parts=train"]))
    ctx.check_peers({"flair": flair_bench.REQUIRES, "spacy": spacy_bench.REQUIRES})
    part = Part(
        "train",
        (Measurement("flair_train", lambda ctx: pytest.fail("must not run"), peer="flair"),),
        lambda ctx, earlier: {},
        lambda ctx, keys: [],
    )
    run_part(ctx, part)
    assert ctx.results == {"flair_train": None}
    keys, rows = collect(ctx)
    summary = headline(ctx, keys)
    assert set(CONTRACT_KEYS) <= set(summary)
    for key in CONTRACT_PEER_KEYS:
        assert summary[key] is None, key
    assert "flair: peer not installed (no .venv-peers: run `make peers`)" in table(rows)


# ----------------------------------------------------------------------------- training figures
def test_training_figures_are_the_epochs_after_the_first_validation_apart():
    history = {
        "train_time_s": [14.0, 10.0, 12.0],
        "epoch_time_s": [16.0, 11.0, 14.0],
        "train_sentences_per_s": [1000.0, 1400.0, 1200.0],
    }
    got = train_bench.epoch_figures(history, tokens_per_sentence=14.5)
    assert got["sentences_per_s"] == 1300.0  # median of epochs 2 and 3
    assert got["train_seconds"] == 11.0 and got["val_seconds"] == 1.5
    assert got["tokens_per_s"] == pytest.approx(1300.0 * 14.5)
    assert got["epochs_run"] == 3 and got["figure"] == "median of epochs 2-3"
    assert [e["val_seconds"] for e in got["epochs"]] == [2.0, 1.0, 2.0]
    assert [e["sentences"] for e in got["epochs"]] == [14000, 14000, 14400]
    assert steady([5.0]) == 5.0 and steady([]) is None and steady([9.0, 1.0, 3.0]) == 2.0
    with pytest.raises(RuntimeError, match="no complete epoch"):
        train_bench.epoch_figures({k: [] for k in history}, 14.5)


def test_the_real_training_run_is_make_trains_config_with_a_temporary_store(tiny_corpus, tmp_path):
    from nerlab.training.config import compose

    overrides = train_bench.real_overrides(tiny_corpus, tmp_path, epochs=2, quick=True)
    cfg = compose(overrides, output_dir=tmp_path / "run")
    assert cfg.data.dir == str(tiny_corpus) and cfg.trainer.max_epochs == 2 and cfg.test is False
    assert cfg.logger.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlruns.db"
    assert cfg.trainer.limit_train_batches == train_bench.QUICK_BATCHES
    assert cfg.paths.root_dir == str(tmp_path)
    # nothing else is changed: the callbacks, logger and progress bar a user gets
    default = compose([f"data.dir={tiny_corpus}"], output_dir=tmp_path / "default")

    ours, users = (OmegaConf.to_container(c, resolve=False) for c in (cfg, default))
    for group in ("callbacks", "model", "optimizer", "scheduler"):
        assert ours[group] == users[group], group
    assert cfg.trainer.enable_progress_bar == default.trainer.enable_progress_bar
    assert set(cfg.logger) == set(default.logger)


def test_the_training_figures_are_the_sentence_level_models():
    composed: list = []

    def compose(overrides):
        composed.append(list(overrides))
        memory = "experiment=conll03_sentence" not in overrides
        return OmegaConf.create({"model": {"document_memory": memory}})

    cfg, overrides = train_bench.sentence_level(compose, ["data.dir=x"])
    assert cfg.model.document_memory is False
    assert overrides == ["data.dir=x", "experiment=conll03_sentence"] == composed[-1]
    cfg, overrides = train_bench.sentence_level(
        lambda o: OmegaConf.create({"model": {"document_memory": False}}), ["data.dir=x"]
    )
    assert overrides == ["data.dir=x"]  # the default already is: nothing added
    # with the real conf/: the default reads documents, the bench's model does not
    from nerlab.training.config import compose as real_compose

    default = real_compose(["data.dir=x"])
    assert default.model.document_memory and default.model.document_encoder_dims == 100
    cfg, _ = train_bench.sentence_level(real_compose, ["data.dir=x"])
    assert not cfg.model.document_memory and cfg.scheduler is None
    # flair's ModelTrainer runs at mini_batch_size=32: the bench's model trains at 32 too
    assert cfg.trainer.max_epochs == 30 and cfg.data.batch_size == flair_bench.BATCH_SIZE == 32
    assert default.data.batch_size == 64


# ----------------------------------------------------------------------------- the command
@pytest.mark.slow
def test_flair_and_spacy_measure_a_few_sentences_in_the_peers_venv(conll_dir):
    for module in (*flair_bench.REQUIRES, *spacy_bench.REQUIRES):
        found, reason = peer_has(module)
        if not found:
            pytest.skip(reason)
    spacy = spacy_bench.run(conll_dir, quick=True, timeout=300)
    assert spacy["sentences"] == 200 and spacy["tokens_per_s"] > 0
    assert spacy["components"] == ["tok2vec", "ner"] and spacy["threads"] == 1
    infer = flair_bench.run("infer", conll_dir, quick=True, threads=1, timeout=300)
    assert infer["sentences"] == 200 and infer["tokens_per_s"] > 0
    assert infer["torch_threads"] == 1 and infer["model"]["tags_with_start_stop"] == 19
    train = flair_bench.run("train", conll_dir, quick=True, threads=1, epochs=2, timeout=600)
    assert train["epochs_run"] == 2 and len(train["epochs"]) == 2
    assert train["sentences"] == 32 * flair_bench.QUICK_BATCHES and train["sentences_per_s"] > 0
    assert all(e["val_seconds"] > 0 for e in train["epochs"])  # the dev split, each epoch


def _bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_quick_bench_prints_the_json_contract_and_writes_results(tiny_corpus, tmp_path):
    out_dir = tmp_path / "results"
    # the parts that take seconds here (training, the exported tagger, the server: under slow)
    proc = _bench(
        f"data_dir={tiny_corpus}",
        "quick=true",
        "peers=false",
        "threads=1",
        f"out_dir={out_dir}",
        "parts=data,crf,optim,infer,size,flops",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert set(OURS_KEYS) <= set(summary)
    assert not set(CONTRACT_PEER_KEYS) & set(summary)  # peers=false leaves them out
    # measured here: positive numbers
    for key in (
        "infer_tokens_per_s",
        "infer_tokens_per_s_batch1",
        "infer_batch1_p50_ms",
        "network_infer_tokens_per_s",
        "network_infer_tokens_per_s_batch1",
        "crf_nll_sentences_per_s",
        "crf_viterbi_sentences_per_s",
        "crf_torch_nll_sentences_per_s",
        "crf_k17_torch_nll_sentences_per_s",
        "data_train_seconds",
        "model_dir_mb",
        "infer_cold_start_s",
        "infer_peak_rss_mb",
        "flops_per_token_train",
        "peak_gflops",
        "infer_peak_fraction",
    ):
        assert isinstance(summary[key], float) and summary[key] > 0, (key, summary[key])
    # not run: None, with the reason
    assert summary["train_sentences_per_s"] is None and summary["train_peak_rss_mb"] is None
    assert summary["notes"]["train"] == "not run (parts=...)"
    assert "peers=false" in summary["notes"]["flair"]
    assert summary["machine"]["torch_threads"] == 1
    assert summary["machine"]["cpu_count"] >= 1
    # the table, then the JSON line
    assert lines[0].split("|")[0].strip() == "figure"
    for start in (
        "CRF NLL fwd+bwd K=9",
        "CRF NLL fwd+bwd K=9, torch backend",
        "optimizer: NAdam step",
        "infer: Tagger.tag, batch 256",
        "infer: network only",
    ):
        assert any(line.startswith(start) for line in lines), start

    written = Path(summary["results_file"])
    assert written.parent == out_dir and written.name.startswith("bench-")
    results = json.loads((out_dir / "latest.json").read_text())
    assert results == json.loads(written.read_text())
    assert results["summary"]["infer_tokens_per_s"] == summary["infer_tokens_per_s"]
    parts = results["parts"]
    # the headline is the Tagger on the test split's token lists; the network figure is not
    assert parts["infer"]["call"].startswith("Tagger.load")
    assert parts["infer"]["sentences"] == 30 and parts["infer"]["batch_size"] == 256
    assert parts["infer"]["tokens"] == parts["network_infer"]["tokens"]  # the same test split
    assert parts["network_infer"]["call"].startswith("net(batch)")
    assert parts["crf"]["results"]["17"]["num_tags"] == 17
    assert parts["crf"]["results"]["9"]["ours_torch_nll_sps"] > 0
    assert parts["optim"]["fused_nadam_steps_per_s"] > 0
    tagger = parts["size"]["tagger"]  # the saved model, loaded and run by a child
    assert tagger["peak_rss_mb"] > 0 and tagger["tokens"] > 0
    assert results["summary"]["infer_peak_rss_mb"] == tagger["peak_rss_mb"]
    assert results["summary"]["infer_cold_start_s"] == tagger["cold_start_s"]
    assert 0 < tagger["cold_start_s"] < 120
    assert tagger["training_stack_imported"] == []
    assert results["machine"]["cpu_model"]
    assert not results["errors"]


def _quick_bench(data_dir, tmp_path, parts: str):
    """``python -m benchmarks quick=true peers=false threads=1 parts=PARTS`` on ``data_dir``,
    its results under ``tmp_path / "results"``."""
    return _bench(
        f"data_dir={data_dir}",
        "quick=true",
        "peers=false",
        "threads=1",
        f"out_dir={tmp_path / 'results'}",
        f"parts={parts}",
    )


@pytest.mark.slow
def test_quick_bench_trains_with_make_trains_config_and_reads_its_epochs(tiny_corpus, tmp_path):
    proc = _quick_bench(tiny_corpus, tmp_path, "train")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(OURS_KEYS) <= set(summary)
    for key in (
        "train_sentences_per_s",
        "train_tokens_per_s",
        "train_epoch_seconds",
        "train_peak_rss_mb",
        "train_bare_loop_sentences_per_s",
        "train_real_vs_bare",
    ):
        assert isinstance(summary[key], float) and summary[key] > 0, (key, summary[key])
    assert summary["train_val_seconds"] >= 0 and summary["train_epochs"] == 2
    assert summary["train_full_epoch"] is True  # 120 sentences: under 50 batches
    results = json.loads((tmp_path / "results" / "latest.json").read_text())
    real, bare = results["parts"]["train"], results["parts"]["train_bare"]
    # the real run: the configured callbacks, MLflow logger and progress bar, two epochs read
    # back from its MLflow store, each with its validation apart
    assert {"model_checkpoint", "early_stopping"} <= set(real["callbacks"])
    assert real["loggers"] == ["mlflow"] and "test=false" in real["overrides"]
    assert [e["epoch"] for e in real["epochs"]] == [0, 1]
    assert all(e["sentences"] == 120 for e in real["epochs"])
    assert summary["train_sentences_per_s"] == real["epochs"][1]["sentences_per_s"]
    assert bare["full_epoch"] is True and bare["sentences"] == 120
    assert not results["errors"]


@pytest.mark.slow
def test_quick_bench_of_the_exported_tagger_and_the_server(tiny_corpus, tmp_path):
    proc = _quick_bench(tiny_corpus, tmp_path, "infer,onnx,serve")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    # the exported tagger beside the torch one, and the server under load
    for key in (
        "infer_tokens_per_s",
        "onnx_infer_tokens_per_s",
        "onnx_int8_infer_tokens_per_s",
        "onnx_int8_vs_torch",
        "onnx_int8_batch1_p50_ms",
        "onnx_int8_peak_rss_mb",
        "serve_requests_per_s",
        "serve_p99_ms",
    ):
        assert isinstance(summary[key], float) and summary[key] > 0, (key, summary[key])
    assert summary["onnx_agreement"] == 1.0  # fp32: the same tags as torch
    assert summary["onnx_int8_torch_imported"] is False
    assert summary["serve_errors"] == 0
    assert any(line.startswith("tagger ONNX int8: batch 256") for line in lines)


def test_bench_without_data_records_why_and_still_ends_with_json(tmp_path):
    proc = _bench(
        f"data_dir={tmp_path / 'nowhere'}",
        "quick=true",
        "peers=false",
        "parts=data,crf,train,infer",
        f"out_dir={tmp_path / 'results'}",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(OURS_KEYS) <= set(summary)
    assert summary["train_sentences_per_s"] is None and summary["infer_tokens_per_s"] is None
    assert summary["network_infer_tokens_per_s"] is None
    assert "no train.txt" in summary["notes"]["train"]
    assert "no train.txt" in summary["notes"]["infer"]
    assert summary["notes"]["flops"].startswith("not run")


def test_bench_refuses_an_unknown_option():
    proc = _bench("colour=red", timeout=60)
    assert proc.returncode == 2
    assert "colour" in proc.stderr and proc.stderr.count("\n") == 1


def test_gpu_check_says_there_is_no_gpu_and_exits_cleanly(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the check would really run")
    out = tmp_path / "gpu.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", f"out={out}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "no CUDA GPU" in result.stdout
    assert json.loads(out.read_text()) == json.loads(result.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text())["gpu"] is None


def test_optim_bench_steps_the_models_own_shapes():
    from benchmarks import optim_bench

    module = torch.nn.Sequential(torch.nn.Embedding(10, 3), torch.nn.Linear(3, 2))
    module[0].weight.requires_grad_(False)  # frozen parameters are not stepped
    result = optim_bench.run(module, steps=3, rounds=2)
    assert (result["tensors"], result["elements"]) == (2, 3 * 2 + 2)
    ours, theirs = result["fused_nadam_steps_per_s"], result["torch_nadam_foreach_steps_per_s"]
    assert ours > 0 and theirs > 0
    assert result["speedup"] == pytest.approx(ours / theirs)


def test_the_step_profile_times_steps_and_lists_the_lstm(tiny_corpus):
    from benchmarks.step_profile import profile_steps

    ms, table = profile_steps(tiny_corpus, ["vectors=none"], steps=2, rows=40)
    assert ms > 0
    assert "aten::mkldnn_rnn_layer" in table and "Self CPU time total" in table
