"""`make gpu-check`: the default model on a GPU, in a few minutes, results to a JSON file.

1. trains on CoNLL-2003 through the real ``nerlab-train`` (``python -m nerlab.cli.train``, CSV
   logger: no MLflow store needed) for ``epochs`` epochs, twice: the default model at its batch
   of 32 on one GPU (``trainer=gpu``, ``bf16-mixed``) and the GPU recipe
   (``experiment=gpu``: batches of 128); from each run's metrics: the training seconds of every
   epoch and their median after the first (goals: at most 1.5 s at batch 32, 0.5 s with the
   recipe), training sentences/s, peak GPU memory, validation and test F1;
2. tags the test split with ``Tagger`` on the GPU (batch 256): tokens/second, encoding and
   decoding included (goal: at least 1,000,000), and runs ``Tagger.predict`` (entities with
   their span probabilities); only the network runs on the GPU, the tags and probabilities
   come from the NumPy CRF (``nerlab/inference/crf_numpy.py``) on the CPU;
3. times the CRF's log-likelihood (forward and backward) and Viterbi on the GPU at batch 32
   and 256, the torch backend (a parallel scan) against pytorch-crf when it is importable
   (goals at batch 32: 50,000 sentences/s and 20 times pytorch-crf).

Without a CUDA GPU it says so, writes a results file saying so, and exits 0.

    python -m benchmarks.gpu_check [data_dir=DIR] [out=bench_results/gpu-check.json]
                                   [epochs=3] [precision=bf16-mixed] [embeddings=glove-6b-50d]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nerlab.files import REPO_ROOT as ROOT

DEFAULTS = {
    "data_dir": str(ROOT.parent / "shared" / "data" / "conll2003"),
    "out": str(ROOT / "bench_results" / "gpu-check.json"),
    "epochs": "4",
    "precision": "bf16-mixed",
    "embeddings": "glove-6b-50d",
}


def _options(argv: list[str]) -> dict[str, str]:
    from nerlab.cli.options import parse_options

    return {**DEFAULTS, **parse_options(argv, allowed=DEFAULTS)}


def gpu_info() -> dict | None:
    """Name and memory of the first CUDA device, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1)}


def train_on_gpu(
    data_dir: str, epochs: int, precision: str, embeddings: str, recipe: list[str]
) -> dict:
    """Run ``nerlab-train`` on the GPU with ``recipe``; epoch times, F1, inference figures."""
    import csv

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NERLAB_ROOT": tmp}
        command = [
            sys.executable,
            "-m",
            "nerlab.cli.train",
            "trainer=gpu",
            *recipe,
            f"trainer.precision={precision}",
            f"trainer.max_epochs={epochs}",
            f"data.dir={data_dir}",
            "data.download=false",
            f"vectors.name={embeddings}",
            "trainer.enable_progress_bar=false",
            "logger=csv",
            f"model_dir={tmp}/model",
        ]
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip()[-3000:])
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        metrics = next(Path(tmp).glob("outputs/train/runs/*/csv/version_0/metrics.csv"))
        with metrics.open() as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("train_time_s")]
        infer = infer_on_gpu(f"{tmp}/model", data_dir)
    seconds = [round(float(r["train_time_s"]), 3) for r in rows]
    speeds = [float(r["train_sentences_per_s"]) for r in rows]
    memory = [float(r["gpu_peak_memory_mb"]) for r in rows if r.get("gpu_peak_memory_mb")]
    return {
        "recipe": recipe,
        "train_wall_s": round(wall, 1),
        "epoch_train_seconds": seconds,
        "median_epoch_seconds_after_first": _after_first(seconds),
        "train_sentences_per_s": _after_first(speeds),
        "gpu_peak_memory_mb": max(memory, default=None),
        "val_f1": summary["val_f1"],
        "test_f1": summary["test_f1"],
        "infer": infer,
    }


def _after_first(values: list[float]) -> float | None:
    """The median of the epochs after the first (the first compiles and warms up)."""
    import statistics

    rest = values[1:] or values
    return statistics.median(rest) if rest else None


def _test_tokens(data_dir: str) -> list[list[str]]:
    from nerlab.data import read_conll

    return [s.tokens for s in read_conll(Path(data_dir) / "test.txt")]


def infer_on_gpu(model_dir: str, data_dir: str, repeats: int = 3) -> dict:
    """Tokens/second of ``Tagger.tag`` over the test split on ``cuda`` (best of ``repeats``)."""
    import torch

    from nerlab import Tagger

    tagger = Tagger.load(model_dir, device="cuda", batch_size=256)
    sentences = _test_tokens(data_dir)
    tokens = sum(len(s) for s in sentences)
    tagger.tag(sentences[:256])  # warm-up: kernels, allocator
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        tagger.tag(sentences)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    texts = [" ".join(s) for s in sentences[:512]]
    found = tagger.predict(texts)  # network on the GPU, span probabilities from the NumPy CRF
    confidences = [e["confidence"] for entities in found for e in entities]
    return {
        "tokens": tokens,
        "tokens_per_s": tokens / best,
        "batch_size": 256,
        "predict_texts": len(texts),
        "predict_entities": len(confidences),
        "predict_confidence_in_0_1": all(0.0 <= c <= 1.0 for c in confidences),
        "predict_confidence_range": [
            min(confidences, default=None),
            max(confidences, default=None),
        ],
    }


def crf_on_gpu(
    lengths: list[int], num_tags: int = 9, batch_size: int = 32, batches: int = 40
) -> dict:
    """:func:`_crf_speeds` at ``batch_size``, with the speed-ups over pytorch-crf."""
    out = _crf_speeds(lengths, num_tags, batch_size, batches)
    for label in ("nll", "viterbi"):
        peer = out.get(f"pytorch_crf_{label}_sentences_per_s")
        if peer:
            out[f"crf_{label}_speedup"] = out[f"ours_{label}_sentences_per_s"] / peer
    return out


def _crf_speeds(lengths: list[int], num_tags: int, batch_size: int, batches: int) -> dict:
    """Sentences/second of log-likelihood fwd+bwd and Viterbi, ours (torch) vs pytorch-crf."""
    import torch

    from nerlab.crf import CRF

    device = torch.device("cuda")
    generator = torch.Generator().manual_seed(0)
    data = []
    for _ in range(batches):
        picks = torch.randint(len(lengths), (batch_size,), generator=generator)
        lens = torch.tensor([lengths[i] for i in picks])
        width = int(lens.max())
        mask = (torch.arange(width)[None, :] < lens[:, None]).to(device)
        emissions = torch.randn(batch_size, width, num_tags, generator=generator).to(device)
        tags = torch.randint(num_tags, (batch_size, width), generator=generator).to(device)
        data.append((emissions.requires_grad_(True), tags, mask))
    implementations = {"ours": CRF(num_tags, backend="torch").to(device)}
    try:
        from torchcrf import CRF as PeerCRF

        implementations["pytorch_crf"] = PeerCRF(num_tags, batch_first=True).to(device)
    except ImportError:
        pass
    out: dict = {}
    for name, crf in implementations.items():
        nll = (
            (lambda e, t, m, c=crf: -c.log_likelihood(e, t, m).sum())
            if name == "ours"
            else (lambda e, t, m, c=crf: -c(e, t, m, reduction="sum"))
        )
        decode = crf.decode
        for label, step in (
            ("nll", lambda e, t, m, f=nll: f(e, t, m).backward()),
            ("viterbi", lambda e, t, m, d=decode: d(e.detach(), m)),
        ):
            step(*data[0])
            torch.cuda.synchronize()
            started = time.perf_counter()
            for e, t, m in data:
                step(e, t, m)
            torch.cuda.synchronize()
            out[f"{name}_{label}_sentences_per_s"] = (
                batch_size * batches / (time.perf_counter() - started)
            )
    return out


RECIPES = {"default_batch_32": [], "gpu_recipe": ["experiment=gpu"]}


def main(argv: list[str] | None = None) -> int:
    options = _options(sys.argv[1:] if argv is None else argv)
    out = Path(options["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    gpu = gpu_info()
    results: dict = {"gpu": gpu}
    if gpu is None:
        results["reason"] = "no CUDA GPU on this machine; gpu-check measured nothing"
        print("gpu-check: no CUDA GPU on this machine; nothing to measure (see make bench for CPU)")
    else:
        results.update(measure(options))
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results))
    return 0


def measure(options: dict[str, str]) -> dict:
    """Both training runs, the CRF at batch 32 and 256, and the goals of issue 21."""
    from benchmarks.crf_bench import read_conll_lengths

    data_dir = options["data_dir"]
    train = {
        name: train_on_gpu(
            data_dir, int(options["epochs"]), options["precision"], options["embeddings"], recipe
        )
        for name, recipe in RECIPES.items()
    }
    lengths = read_conll_lengths(str(Path(data_dir) / "train.txt"))
    crf = {f"batch_{b}": crf_on_gpu(lengths, batch_size=b) for b in (32, 256)}
    default, recipe = train["default_batch_32"], train["gpu_recipe"]
    crf32 = crf["batch_32"]
    goals = {
        "epoch_at_batch_32_at_most_1_5_s": (default["median_epoch_seconds_after_first"] or 1e9)
        <= 1.5,
        "epoch_of_the_gpu_recipe_at_most_0_5_s": (recipe["median_epoch_seconds_after_first"] or 1e9)
        <= 0.5,
        "crf_nll_at_batch_32_at_least_50k_sentences_per_s": crf32["ours_nll_sentences_per_s"]
        >= 50_000,
        "crf_nll_at_least_20x_pytorch_crf": (crf32.get("crf_nll_speedup") or 0) >= 20,
        "tagger_at_least_1m_tokens_per_s": default["infer"]["tokens_per_s"] >= 1_000_000,
    }
    return {"train": train, "crf": crf, "goals": goals}


if __name__ == "__main__":
    sys.exit(main())
