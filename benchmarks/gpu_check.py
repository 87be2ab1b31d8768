"""`make gpu-check`: the default model on a GPU, in a few minutes, results to a JSON file.

1. trains the default model for 3 epochs with ``bf16-mixed`` on CoNLL-2003 through the real
   ``nerlab-train`` (``python -m nerlab.cli.train``, CSV logger: no MLflow store needed), and
   reads seconds per epoch from its metrics (goal: under 3 s per epoch on an H100);
2. tags the test split with ``Tagger`` on the GPU (batch 256): tokens/second (goal: over
   200,000), and runs ``Tagger.predict`` (entities with their span probabilities); only the
   network runs on the GPU, the tags and probabilities come from the NumPy CRF
   (``nerlab/inference/crf_numpy.py``) on the CPU;
3. times the CRF on the GPU (the torch backend) against pytorch-crf when it is importable.

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
    "epochs": "3",
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


def train_on_gpu(data_dir: str, epochs: int, precision: str, embeddings: str) -> dict:
    """Run ``nerlab-train`` on the GPU; return epoch times, F1 and inference figures."""
    import csv

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NERLAB_ROOT": tmp}
        command = [
            sys.executable,
            "-m",
            "nerlab.cli.train",
            "trainer=gpu",
            f"trainer.precision={precision}",
            f"trainer.max_epochs={epochs}",
            f"data.dir={data_dir}",
            "data.download=false",
            "data.num_workers=2",
            f"model.embeddings={embeddings}",
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
        epochs_s = [round(float(r["train_time_s"]), 3) for r in rows]
        infer = infer_on_gpu(f"{tmp}/model", data_dir)
    return {
        "train_wall_s": round(wall, 1),
        "epoch_train_seconds": epochs_s,
        "best_epoch_seconds": min(epochs_s) if epochs_s else None,
        "val_f1": summary["val_f1"],
        "test_f1": summary["test_f1"],
        "infer": infer,
    }


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
    if "pytorch_crf" in implementations:
        out["crf_nll_speedup"] = (
            out["ours_nll_sentences_per_s"] / out["pytorch_crf_nll_sentences_per_s"]
        )
        out["crf_viterbi_speedup"] = (
            out["ours_viterbi_sentences_per_s"] / out["pytorch_crf_viterbi_sentences_per_s"]
        )
    return out


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
        from benchmarks.crf_bench import read_conll_lengths

        data_dir = options["data_dir"]
        results["train"] = train_on_gpu(
            data_dir, int(options["epochs"]), options["precision"], options["embeddings"]
        )
        results["crf"] = crf_on_gpu(read_conll_lengths(str(Path(data_dir) / "train.txt")))
        results["goals"] = {
            "epoch_under_3_s": (results["train"]["best_epoch_seconds"] or 1e9) < 3.0,
            "infer_over_200k_tokens_per_s": (results["train"]["infer"] or {}).get("tokens_per_s", 0)
            > 200_000,
        }
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
