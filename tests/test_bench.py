"""The benchmark suite's pieces that do not depend on timing: FLOP counting, options, the
table, and the contract of ``python -m benchmarks`` (last stdout line, results file).
Nothing here asserts on a speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from benchmarks import flair_bench, spacy_bench
from benchmarks.__main__ import REQUIRED_KEYS, Bench, UsageError, parse_options
from benchmarks.flops import achieved, char_positions, flops_per_token
from benchmarks.peers import ChildFailed, peer_has
from benchmarks.report import Row, table

ROOT = Path(__file__).resolve().parents[1]
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


# ----------------------------------------------------------------------------- flair and spaCy
def test_peer_figures_fill_the_summary_ratios_and_table(tmp_path):
    bench = Bench(parse_options([f"data_dir={tmp_path}", "peers=false"]))
    bench.parts = {
        "train": {"sentences_per_s": 1000.0, "torch_threads": 2},
        "flair_train": {
            "sentences_per_s": 160.0,
            "sentences": 2000,
            "split_sentences": 14041,
            "full_epoch": False,
            "batch_size": 32,
            "torch_threads": 2,
        },
        "infer": {"tokens_per_s": 100_000.0, "torch_threads": 2, "batch_size": 256},
        "spacy_infer": {
            "tokens_per_s": 20_000.0,
            "threads": 1,
            "components": ["tok2vec", "ner"],
            "batch_size": 256,
        },
        "flair_infer": {"tokens_per_s": 10_000.0, "torch_threads": 2, "batch_size": 32},
    }
    s = bench.summary()
    assert s["flair_train_sentences_per_s"] == 160.0 and s["flair_train_sentences"] == 2000
    assert s["train_vs_flair"] == pytest.approx(1000 / 160)
    assert s["infer_vs_spacy"] == pytest.approx(5.0)
    assert s["infer_vs_flair"] == pytest.approx(10.0)
    assert s["threads"] == {
        "train": 2,
        "infer": 2,
        "flair_train": 2,
        "flair_infer": 2,
        "spacy_infer": 1,
    }
    text = table(bench.rows(s))
    assert "flair 160" in text and "6.25x" in text
    assert "spaCy 20,000" in text and "5.00x" in text
    assert "flair 10,000" in text and "10.00x" in text
    assert "flair: 2000 of 14041 sentences, batches of 32, torch threads 2" in text


def test_a_missing_peer_leaves_none_with_its_reason(tmp_path, monkeypatch):
    from benchmarks import peers

    monkeypatch.setattr(peers, "peer_python", lambda: None)
    with pytest.raises(ChildFailed, match="make peers"):
        flair_bench.run("train", tmp_path)
    with pytest.raises(ChildFailed, match="make peers"):
        spacy_bench.run(tmp_path)
    bench = Bench(parse_options([f"data_dir={tmp_path}", "peers=false", "parts=train,infer"]))
    bench.check_peers()
    bench.beside("train", "flair_train", "flair", lambda: pytest.fail("must not run"))
    bench.beside("infer", "spacy_infer", "spacy", lambda: pytest.fail("must not run"))
    assert bench.parts == {"flair_train": None, "spacy_infer": None}
    s = bench.summary()
    assert s["flair_train_sentences_per_s"] is None and s["train_vs_flair"] is None
    assert s["spacy_infer_tokens_per_s"] is None and s["infer_vs_spacy"] is None
    assert "flair: peers skipped (peers=false)" in table(bench.rows(s))


CONLL2003 = ROOT.parent / "shared" / "data" / "conll2003"


@pytest.mark.slow
@pytest.mark.skipif(not CONLL2003.exists(), reason="no CoNLL-2003 beside the repository")
def test_flair_and_spacy_measure_a_few_sentences_in_the_peers_venv():
    for module in (*flair_bench.REQUIRES, *spacy_bench.REQUIRES):
        found, reason = peer_has(module)
        if not found:
            pytest.skip(reason)
    spacy = spacy_bench.run(CONLL2003, quick=True, timeout=300)
    assert spacy["sentences"] == 200 and spacy["tokens_per_s"] > 0
    assert spacy["components"] == ["tok2vec", "ner"] and spacy["threads"] == 1
    infer = flair_bench.run("infer", CONLL2003, quick=True, threads=1, timeout=300)
    assert infer["sentences"] == 200 and infer["tokens_per_s"] > 0
    assert infer["torch_threads"] == 1 and infer["model"]["tags_with_start_stop"] == 19
    train = flair_bench.run("train", CONLL2003, quick=True, threads=1, timeout=300)
    assert train["batches"] == flair_bench.QUICK_BATCHES and train["full_epoch"] is False
    assert train["sentences"] == 32 * flair_bench.QUICK_BATCHES and train["sentences_per_s"] > 0


# ----------------------------------------------------------------------------- the command
def _bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_quick_bench_prints_the_json_contract_and_writes_results(tiny_corpus, tmp_path):
    out_dir = tmp_path / "results"
    # every part but the exported tagger and the server (their own test below, under slow)
    parts = "parts=data,crf,optim,train,infer,size,flops"
    proc = _bench(
        f"data_dir={tiny_corpus}",
        "quick=true",
        "peers=false",
        "threads=1",
        f"out_dir={out_dir}",
        parts,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert set(REQUIRED_KEYS) <= set(summary)
    # measured here: positive numbers
    for key in (
        "train_sentences_per_s",
        "train_peak_rss_mb",
        "infer_tokens_per_s",
        "infer_tokens_per_s_batch1",
        "crf_nll_sentences_per_s",
        "crf_viterbi_sentences_per_s",
        "data_train_seconds",
        "model_dir_mb",
        "flops_per_token_train",
        "peak_gflops",
        "train_peak_fraction",
    ):
        assert isinstance(summary[key], float) and summary[key] > 0, (key, summary[key])
    # peers skipped: None, with the reason
    for key in (
        "flair_train_sentences_per_s",
        "spacy_infer_tokens_per_s",
        "flair_infer_tokens_per_s",
        "crf_nll_speedup",
        "crf_viterbi_speedup",
    ):
        assert summary[key] is None, key
    assert "peers=false" in summary["notes"]["flair"]
    assert summary["machine"]["torch_threads"] == 1
    assert summary["machine"]["cpu_count"] >= 1
    # the table, then the JSON line
    assert lines[0].split("|")[0].strip() == "figure"
    assert any(line.startswith("CRF NLL fwd+bwd K=9") for line in lines)

    written = Path(summary["results_file"])
    assert written.parent == out_dir and written.name.startswith("bench-")
    results = json.loads((out_dir / "latest.json").read_text())
    assert results == json.loads(written.read_text())
    assert results["summary"]["train_sentences_per_s"] == summary["train_sentences_per_s"]
    assert results["parts"]["train"]["full_epoch"] is True  # 120 sentences: under 50 batches
    assert results["parts"]["crf"]["results"]["17"]["num_tags"] == 17
    assert results["parts"]["optim"]["fused_nadam_steps_per_s"] > 0
    tagger = results["parts"]["size"]["tagger"]  # the saved model, loaded and run by a child
    assert tagger["peak_rss_mb"] > 0 and tagger["tokens"] > 0
    assert results["summary"]["infer_peak_rss_mb"] == tagger["peak_rss_mb"]
    assert results["summary"]["infer_cold_start_s"] == tagger["cold_start_s"]
    assert 0 < tagger["cold_start_s"] < 120
    assert tagger["training_stack_imported"] == []
    assert any(line.startswith("optimizer: NAdam step") for line in lines)
    assert results["machine"]["cpu_model"]
    assert not results["errors"]


@pytest.mark.slow
def test_quick_bench_of_the_exported_tagger_and_the_server(tiny_corpus, tmp_path):
    proc = _bench(
        f"data_dir={tiny_corpus}",
        "quick=true",
        "peers=false",
        "threads=1",
        f"out_dir={tmp_path / 'results'}",
        "parts=onnx,serve",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    # the exported tagger beside the torch one, and the server under load
    for key in (
        "torch_tagger_infer_tokens_per_s",
        "onnx_infer_tokens_per_s",
        "onnx_int8_infer_tokens_per_s",
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
    assert set(REQUIRED_KEYS) <= set(summary)
    assert summary["train_sentences_per_s"] is None and summary["infer_tokens_per_s"] is None
    assert "no train.txt" in summary["notes"]["train"]
    assert summary["notes"]["flops"].startswith("not run")


def test_bench_refuses_an_unknown_option():
    proc = _bench("colour=red", timeout=60)
    assert proc.returncode == 2
    assert "colour" in proc.stderr and proc.stderr.count("\n") == 1


def test_gpu_check_says_there_is_no_gpu_and_exits_cleanly(tmp_path):
    import json
    import subprocess
    import sys

    import torch

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
    import torch

    from benchmarks import optim_bench

    module = torch.nn.Sequential(torch.nn.Embedding(10, 3), torch.nn.Linear(3, 2))
    module[0].weight.requires_grad_(False)  # frozen parameters are not stepped
    result = optim_bench.run(module, steps=3, rounds=2)
    assert (result["tensors"], result["elements"]) == (2, 3 * 2 + 2)
    ours, theirs = result["fused_nadam_steps_per_s"], result["torch_nadam_foreach_steps_per_s"]
    assert ours > 0 and theirs > 0
    assert result["speedup"] == pytest.approx(ours / theirs)
