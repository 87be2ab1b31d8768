"""`make bench` / ``python -m benchmarks [key=value ...]``: the benchmark suite.

Every speed figure stands beside its peer's, measured in the same run, with the ratio
ours / peer (above 1: nerlab is faster). Parts, in the order they run:

1. data: parsing, vocabularies and encoding (:mod:`benchmarks.data_bench`);
2. CRF: ours against pytorch-crf, in the peers' venv (:mod:`benchmarks.crf_comparison`);
3. training: one epoch of the default model, in a child process (:mod:`.train_bench`), then
   flair's tagger of the same architecture, in the peers' venv (:mod:`.flair_bench`);
4. inference: the test split, batched and one sentence at a time (:mod:`.infer_bench`), then
   spaCy's small English NER (:mod:`.spacy_bench`) and flair's tagger, in the peers' venv;
5. model directory size (:mod:`.model_size`);
6. FLOPs per token against the measured matmul peak (:mod:`.flops`);
7. the exported tagger, ONNX fp32 and int8, beside the torch tagger (:mod:`.onnx_bench`);
8. the batching server under 16 concurrent clients (:mod:`.serve_bench`; ``make bench-serve``
   runs it alone: ``parts=serve``).

Options (``key=value``): ``data_dir`` (default ``../shared/data/conll2003`` beside the
repository), ``quick=true`` (a few batches of each: a smoke test, not a measurement),
``peers=false`` (skip the peers' venv), ``threads=N`` (torch threads in every process; default
torch's own, for flair too; spaCy computes on one thread), ``out_dir`` (default
``bench_results``), ``parts=data,crf,...`` (a subset; the peers run with ``train`` and
``infer``), ``timeout=SECONDS`` (for each child process).

A part that cannot run (no data, no peer, an error) leaves None and a reason, and the bench
goes on. Prints the table, writes ``bench_results/bench-<timestamp>.json`` and
``bench_results/latest.json``, and ends with one JSON line of the headline figures.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from benchmarks.peers import ROOT, ChildFailed, peer_has, run_json, set_threads
from benchmarks.report import Row, fmt, machine_info, table, write_results

PARTS = ("data", "crf", "optim", "train", "infer", "size", "flops", "onnx", "serve")
DEFAULTS = {
    "data_dir": str(ROOT.parent / "shared" / "data" / "conll2003"),
    "quick": "false",
    "peers": "true",
    "threads": "",
    "out_dir": str(ROOT / "bench_results"),
    "parts": ",".join(PARTS),
    "timeout": "",
}
#: Keys the last stdout line always has (None where a figure could not be measured).
REQUIRED_KEYS = (
    "train_sentences_per_s",
    "flair_train_sentences_per_s",
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
)
SPLIT_FILES = ("train.txt", "valid.txt", "test.txt")


class UsageError(ValueError):
    pass


def parse_options(argv: list[str]) -> dict:
    from nerlab.cli.options import parse_options as parse_cli
    from nerlab.errors import NerlabError

    try:
        given = parse_cli([a.lstrip("+") for a in argv], allowed=DEFAULTS)
    except NerlabError as err:
        raise UsageError(str(err)) from None
    options = {**DEFAULTS, **given}
    parsed: dict = {"data_dir": Path(options["data_dir"]), "out_dir": Path(options["out_dir"])}
    for key in ("quick", "peers"):
        value = options[key].strip().lower()
        if value not in ("true", "false", "1", "0", "yes", "no"):
            raise UsageError(f"{key} must be true or false, found {options[key]!r}")
        parsed[key] = value in ("true", "1", "yes")
    for key in ("threads", "timeout"):
        try:
            parsed[key] = int(options[key]) if options[key] not in ("", "null", "None") else None
        except ValueError:
            raise UsageError(f"{key} must be a whole number, found {options[key]!r}") from None
    parts = [p.strip() for p in options["parts"].split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise UsageError(f"parts: unknown {sorted(unknown)}; choose from {list(PARTS)}")
    parsed["parts"] = parts
    return parsed


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _ratio(ours: float | None, peer: float | None) -> float | None:
    return ours / peer if ours and peer else None


class Bench:
    def __init__(self, options: dict) -> None:
        self.o = options
        self.parts: dict[str, dict | None] = {}
        self.notes: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.built = None
        self.model_dir: Path | None = None
        self.load_before: list[float] | None = None
        self.peer_missing: dict[str, str] = {}  # peer -> why it cannot run

    def attempt(self, name: str, run, part: str | None = None) -> dict | None:
        """Run one part (selected by ``parts=`` as ``part``, default ``name``); on failure keep
        its reason and go on."""
        if (part or name) not in self.o["parts"]:
            self.notes[name] = "not run (parts=...)"
            return None
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            result = run()
        except ChildFailed as err:
            result, self.errors[name] = None, str(err)
        except Exception as err:  # noqa: BLE001 - one part's failure must not end the bench
            traceback.print_exc(file=sys.stderr)
            result, self.errors[name] = None, f"{type(err).__name__}: {err}"
        if name in self.errors:
            print(f"[bench] {name} failed: {self.errors[name]}", file=sys.stderr, flush=True)
        self.parts[name] = result
        print(f"[bench] {name} done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        return result

    # --------------------------------------------------------------------------- parts
    def missing_data(self) -> str | None:
        data_dir = self.o["data_dir"]
        missing = [f for f in SPLIT_FILES if not (data_dir / f).exists()]
        if missing:
            return f"no {', '.join(missing)} in {data_dir} (set data_dir=...)"
        return None

    def needs_data(self, name: str, run, part: str | None = None):
        reason = self.missing_data()
        if reason is not None and (part or name) in self.o["parts"]:
            self.errors[name] = reason
            self.parts[name] = None
            return None
        return self.attempt(name, run, part)

    def check_peers(self) -> None:
        """Which of flair and spaCy can run: every module each needs is in ``.venv-peers``."""
        from benchmarks import flair_bench, spacy_bench

        for peer, modules in (("flair", flair_bench.REQUIRES), ("spacy", spacy_bench.REQUIRES)):
            if not self.o["peers"]:
                self.peer_missing[peer] = "peers skipped (peers=false)"
                continue
            for module in modules:
                found, reason = peer_has(module)
                if not found:
                    self.peer_missing[peer] = reason
                    break
        self.notes.update(self.peer_missing)

    def beside(self, part: str, name: str, peer: str, run) -> None:
        """A peer's measurement that goes with our ``part``: run with it, unless the peer
        cannot run (the reason is then ``notes[peer]``)."""
        if peer in self.peer_missing:
            if part in self.o["parts"]:
                self.parts[name] = None
            return
        self.needs_data(name, run, part)

    def data(self):
        from benchmarks import data_bench

        return data_bench.run(self.o["data_dir"], repeats=1 if self.o["quick"] else 3)

    def crf(self):
        from benchmarks import crf_comparison

        return crf_comparison.run(
            self.o["data_dir"] / "train.txt",
            quick=self.o["quick"],
            threads=self.o["threads"],
            use_peers=self.o["peers"],
            timeout=self.o["timeout"],
        )

    def optim(self):
        from benchmarks import optim_bench

        quick = self.o["quick"]
        return optim_bench.run(self.build().module, steps=20 if quick else 200)

    def train(self):
        command = [sys.executable, "-m", "benchmarks.train_bench", "--json"]
        command += ["--data-dir", str(self.o["data_dir"].resolve())]
        if self.o["quick"]:
            command.append("--quick")
        if self.o["threads"]:
            command += ["--threads", str(self.o["threads"])]
        return run_json(command, threads=self.o["threads"], timeout=self.o["timeout"])

    def flair_train(self):
        from benchmarks import flair_bench

        return flair_bench.run(
            "train",
            self.o["data_dir"],
            quick=self.o["quick"],
            threads=self.o["threads"],
            timeout=self.o["timeout"],
        )

    def flair_infer(self):
        from benchmarks import flair_bench

        return flair_bench.run(
            "infer",
            self.o["data_dir"],
            quick=self.o["quick"],
            threads=self.o["threads"],
            repeats=1 if self.o["quick"] else 3,
            timeout=self.o["timeout"],
        )

    def spacy_infer(self):
        from benchmarks import spacy_bench

        return spacy_bench.run(
            self.o["data_dir"],
            quick=self.o["quick"],
            repeats=1 if self.o["quick"] else 3,
            timeout=self.o["timeout"],
        )

    def build(self):
        if self.built is None:
            from benchmarks.default_model import build_default_model, compose_config

            self.built = build_default_model(compose_config(self.o["data_dir"]))
        return self.built

    def infer(self):
        from benchmarks import infer_bench

        quick = self.o["quick"]
        return infer_bench.run(
            self.build(), repeats=1 if quick else 3, max_sentences=200 if quick else None
        )

    def exported(self) -> Path:
        """The default model saved and exported (fp32 and int8) in a temporary directory."""
        if self.model_dir is None:
            import tempfile

            from nerlab.inference.export import export_onnx
            from nerlab.inference.model_dir import save_model
            from nerlab.training.run import model_info

            built = self.build()
            net = built.module.net
            folder = Path(tempfile.mkdtemp(prefix="nerlab-bench-export-")) / "model"
            save_model(folder, net, model_info(built.cfg, built.datamodule, net))
            export_onnx(folder, quantize="int8")
            self.model_dir = folder
        return self.model_dir

    def onnx(self):
        from benchmarks import onnx_bench

        quick = self.o["quick"]
        return onnx_bench.run(
            self.exported(),
            self.o["data_dir"] / "test.txt",
            repeats=1 if quick else 3,
            calls=30 if quick else 300,
            max_sentences=200 if quick else None,
            threads=self.o["threads"],
            timeout=self.o["timeout"],
        )

    def serve(self):
        from benchmarks import serve_bench

        return serve_bench.run(
            self.exported(),
            self.o["data_dir"] / "test.txt",
            seconds=2.0 if self.o["quick"] else 10.0,
        )

    def size(self):
        from benchmarks import model_size

        test_file = self.o["data_dir"] / "test.txt"
        return model_size.run(
            self.build(),
            tag_file=test_file if test_file.exists() else None,
            threads=self.o["threads"],
            timeout=self.o["timeout"],
        )

    def flops(self):
        from benchmarks import flops
        from benchmarks.default_model import model_settings

        quick = self.o["quick"]
        out: dict = {"peak": flops.peak_gflops(1024 if quick else 2048, 2 if quick else 5)}
        built = self.build() if self.missing_data() is None else None
        if built is None:
            from benchmarks.default_model import compose_config

            cfg = compose_config(self.o["data_dir"])
            num_tags, train_chars, eval_chars = 17, {}, {}
            self.notes["flops"] = "no data: K=17 and default characters per token assumed"
        else:
            cfg, dm = built.cfg, built.datamodule
            num_tags = len(dm.vocabs.tags)
            limit = 50 if quick else None
            train_chars = flops.char_positions(dm.train_dataloader(), limit)
            eval_chars = flops.char_positions(dm.test_dataloader(), limit)
        settings = model_settings(cfg)
        out["settings"] = settings
        out["num_tags"] = num_tags
        out["train_batches"] = train_chars
        out["eval_batches"] = eval_chars
        out["train_per_token"] = flops.flops_per_token(settings, num_tags, **train_chars)
        out["infer_per_token"] = flops.flops_per_token(settings, num_tags, **eval_chars)
        peak = out["peak"]["gflops"]
        train = self.parts.get("train") or {}
        infer = self.parts.get("infer") or {}
        out["train_achieved"] = flops.achieved(
            out["train_per_token"]["training"], train.get("tokens_per_s"), peak
        )
        out["infer_achieved"] = flops.achieved(
            out["infer_per_token"]["inference"], infer.get("tokens_per_s"), peak
        )
        return out

    # --------------------------------------------------------------------------- run
    def run(self) -> dict:
        if self.o["threads"]:
            set_threads(self.o["threads"])
        self.load_before = _load_average()
        self.check_peers()
        self.needs_data("data", self.data)
        self.needs_data("crf", self.crf)
        self.needs_data("optim", self.optim)
        self.needs_data("train", self.train)
        self.beside("train", "flair_train", "flair", self.flair_train)
        self.needs_data("infer", self.infer)
        self.beside("infer", "spacy_infer", "spacy", self.spacy_infer)
        self.beside("infer", "flair_infer", "flair", self.flair_infer)
        self.needs_data("size", self.size)
        self.attempt("flops", self.flops)
        self.needs_data("onnx", self.onnx)
        self.needs_data("serve", self.serve)
        if self.model_dir is not None:
            import shutil

            shutil.rmtree(self.model_dir.parent, ignore_errors=True)
        return self.summary()

    def summary(self) -> dict:
        p = {k: v or {} for k, v in self.parts.items()}
        data, crf, train = p.get("data", {}), p.get("crf", {}), p.get("train", {})
        infer, size, fl = p.get("infer", {}), p.get("size", {}), p.get("flops", {})
        flair_train, flair_infer = p.get("flair_train", {}), p.get("flair_infer", {})
        spacy_infer = p.get("spacy_infer", {})
        s: dict = {}
        s["data_train_seconds"] = data.get("train_seconds")
        s["data_setup_seconds"] = data.get("setup_seconds")
        crf_results = crf.get("results", {})
        for k, prefix in (("9", "crf"), ("17", "crf_k17")):
            r = crf_results.get(k, {})
            for work in ("nll", "viterbi"):
                ours, peer = r.get(f"ours_numba_{work}_sps"), r.get(f"pytorch_crf_{work}_sps")
                s[f"{prefix}_{work}_sentences_per_s"] = ours
                s[f"{prefix}_{work}_pytorch_crf_sentences_per_s"] = peer
                s[f"{prefix}_{work}_speedup"] = _ratio(ours, peer)
        optim = p.get("optim", {})
        s["optim_steps_per_s"] = optim.get("fused_nadam_steps_per_s")
        s["optim_torch_steps_per_s"] = optim.get("torch_nadam_foreach_steps_per_s")
        s["optim_speedup"] = optim.get("speedup")
        s["train_sentences_per_s"] = train.get("sentences_per_s")
        s["flair_train_sentences_per_s"] = flair_train.get("sentences_per_s")
        s["flair_train_sentences"] = flair_train.get("sentences")  # timed: all or --quick's few
        s["train_vs_flair"] = _ratio(s["train_sentences_per_s"], s["flair_train_sentences_per_s"])
        s["train_tokens_per_s"] = train.get("tokens_per_s")
        s["train_epoch_seconds"] = train.get("fit_seconds")
        s["train_full_epoch"] = train.get("full_epoch")
        s["train_peak_rss_mb"] = train.get("peak_rss_mb")
        s["infer_tokens_per_s"] = infer.get("tokens_per_s")
        s["infer_tokens_per_s_batch1"] = infer.get("batch1_tokens_per_s")
        s["spacy_infer_tokens_per_s"] = spacy_infer.get("tokens_per_s")
        s["flair_infer_tokens_per_s"] = flair_infer.get("tokens_per_s")
        s["infer_vs_spacy"] = _ratio(s["infer_tokens_per_s"], s["spacy_infer_tokens_per_s"])
        s["infer_vs_flair"] = _ratio(s["infer_tokens_per_s"], s["flair_infer_tokens_per_s"])
        s["threads"] = {
            "train": train.get("torch_threads"),
            "infer": infer.get("torch_threads"),
            "flair_train": flair_train.get("torch_threads"),
            "flair_infer": flair_infer.get("torch_threads"),
            "spacy_infer": spacy_infer.get("threads"),
        }
        s["model_dir_mb"] = size.get("mb")
        s["infer_cold_start_s"] = size.get("tagger_cold_start_s")
        s["infer_peak_rss_mb"] = size.get("tagger_peak_rss_mb")
        s["flops_per_token_train"] = (fl.get("train_per_token") or {}).get("training")
        s["flops_per_token_infer"] = (fl.get("infer_per_token") or {}).get("inference")
        s["peak_gflops"] = (fl.get("peak") or {}).get("gflops")
        for name in ("train", "infer"):
            got = fl.get(f"{name}_achieved") or {}
            s[f"{name}_gflops"] = got.get("gflops")
            s[f"{name}_peak_fraction"] = got.get("peak_fraction")
        onnx = p.get("onnx", {})
        for name in ("torch", "onnx", "onnx_int8"):
            got = onnx.get(name) or {}
            key = "torch_tagger" if name == "torch" else name
            s[f"{key}_infer_tokens_per_s"] = got.get("tokens_per_s")
            s[f"{key}_batch1_p50_ms"] = got.get("batch1_p50_ms")
            s[f"{key}_batch1_p99_ms"] = got.get("batch1_p99_ms")
            s[f"{key}_model_bytes"] = got.get("model_bytes")
            s[f"{key}_agreement"] = got.get("agreement_with_torch")
        s["onnx_int8_vs_torch"] = _ratio(
            s["onnx_int8_infer_tokens_per_s"], s["torch_tagger_infer_tokens_per_s"]
        )
        process = onnx.get("onnx_int8_process") or {}
        s["onnx_int8_peak_rss_mb"] = process.get("peak_rss_mb")
        s["onnx_int8_cold_start_s"] = process.get("cold_start_s")
        s["onnx_int8_torch_imported"] = process.get("torch_imported")
        serve = p.get("serve", {})
        s["serve_requests_per_s"] = serve.get("requests_per_s")
        s["serve_p50_ms"] = serve.get("p50_ms")
        s["serve_p99_ms"] = serve.get("p99_ms")
        s["serve_errors"] = serve.get("errors")
        s["quick"] = self.o["quick"]
        return s

    def why(self, part: str) -> str:
        """Why ``part`` has no figures ('' when it ran)."""
        return self.errors.get(part) or self.notes.get(part, "")

    def peer_note(self, name: str, peer: str) -> str:
        """How the peer's figure of part ``name`` was measured, or why there is none."""
        label = {"flair": "flair", "spacy": "spaCy"}[peer]
        why = self.why(name) or self.notes.get(peer, "")
        got = self.parts.get(name)
        if why or not got:
            return f"{label}: {why}" if why else ""
        if name == "flair_train":
            timed = f"{got.get('sentences')} of {got.get('split_sentences')} sentences"
            if got.get("full_epoch"):
                timed = "one epoch"
            return (
                f"flair: {timed}, batches of {got.get('batch_size')}, "
                f"torch threads {got.get('torch_threads')}"
            )
        if name == "flair_infer":
            batch256 = fmt(got.get("batch256_tokens_per_s"))
            return (
                f"flair: predict(mini_batch_size={got.get('batch_size')}), torch threads "
                f"{got.get('torch_threads')}; batches of 256: {batch256}"
            )
        return (
            f"spaCy: {'+'.join(got.get('components', []))} on pre-tokenized Docs, batch "
            f"{got.get('batch_size')}, {got.get('threads')} thread; ner alone: "
            f"{fmt(got.get('ner_only_tokens_per_s'))}"
        )

    def rows(self, s: dict) -> list[Row]:
        crf = self.parts.get("crf") or {}
        crf_note = self.why("crf") or crf.get("peer_note", "")
        batch = (self.parts.get("infer") or {}).get("batch_size", 256)
        rows = [
            Row(
                "data: train.txt parse+vocab+encode (s)",
                s["data_train_seconds"],
                note=self.why("data"),
            ),
            Row("data: DataModule.setup, 3 splits (s)", s["data_setup_seconds"]),
        ]
        for k, prefix in (("9", "crf"), ("17", "crf_k17")):
            for work, label in (("nll", "NLL fwd+bwd"), ("viterbi", "Viterbi")):
                rows.append(
                    Row(
                        f"CRF {label} K={k} (sentences/s)",
                        s[f"{prefix}_{work}_sentences_per_s"],
                        "pytorch-crf",
                        s[f"{prefix}_{work}_pytorch_crf_sentences_per_s"],
                        s[f"{prefix}_{work}_speedup"],
                        crf_note if (k, work) == ("9", "nll") else "",
                    )
                )
        rows.append(
            Row(
                "optimizer: NAdam step, default model (steps/s)",
                s["optim_steps_per_s"],
                "torch NAdam foreach",
                s["optim_torch_steps_per_s"],
                s["optim_speedup"],
                self.why("optim"),
            )
        )
        train_note = self.why("train")
        if s["train_full_epoch"] is False:
            train_note = "quick: part of an epoch only"
        rows += [
            Row(
                "train: one epoch (sentences/s)",
                s["train_sentences_per_s"],
                "flair",
                s["flair_train_sentences_per_s"],
                s["train_vs_flair"],
                "; ".join(x for x in (train_note, self.peer_note("flair_train", "flair")) if x),
            ),
            Row("train: one epoch (s)", s["train_epoch_seconds"]),
            Row("train: peak RSS (MB)", s["train_peak_rss_mb"]),
            Row(
                f"infer: batch {batch} (tokens/s)",
                s["infer_tokens_per_s"],
                "spaCy",
                s["spacy_infer_tokens_per_s"],
                s["infer_vs_spacy"],
                "; ".join(
                    x for x in (self.why("infer"), self.peer_note("spacy_infer", "spacy")) if x
                ),
            ),
            Row(
                f"infer: batch {batch} (tokens/s), vs flair",
                s["infer_tokens_per_s"],
                "flair",
                s["flair_infer_tokens_per_s"],
                s["infer_vs_flair"],
                self.peer_note("flair_infer", "flair"),
            ),
            Row("infer: batch 1 (tokens/s)", s["infer_tokens_per_s_batch1"]),
            Row("model directory (MB)", s["model_dir_mb"], note=self.why("size")),
            Row("tagger: cold start, process start to first tags (s)", s["infer_cold_start_s"]),
            Row("tagger: peak RSS tagging the test split (MB)", s["infer_peak_rss_mb"]),
            Row("FLOPs/token, training", s["flops_per_token_train"], note=self.why("flops")),
            Row("FLOPs/token, inference", s["flops_per_token_infer"]),
            Row("matmul peak (GFLOP/s)", s["peak_gflops"]),
            Row("train achieved (GFLOP/s)", s["train_gflops"]),
            Row("train fraction of peak", s["train_peak_fraction"]),
            Row("infer achieved (GFLOP/s)", s["infer_gflops"]),
            Row("infer fraction of peak", s["infer_peak_fraction"]),
        ]
        for key, label in (("onnx", "ONNX fp32"), ("onnx_int8", "ONNX int8")):
            rows += [
                Row(
                    f"tagger {label}: batch 256 (tokens/s)",
                    s[f"{key}_infer_tokens_per_s"],
                    "torch tagger",
                    s["torch_tagger_infer_tokens_per_s"],
                    _ratio(s[f"{key}_infer_tokens_per_s"], s["torch_tagger_infer_tokens_per_s"]),
                    self.why("onnx"),
                ),
                Row(
                    f"tagger {label}: one 20-token sentence, p50 (ms)",
                    s[f"{key}_batch1_p50_ms"],
                    "torch tagger",
                    s["torch_tagger_batch1_p50_ms"],
                    _ratio(s["torch_tagger_batch1_p50_ms"], s[f"{key}_batch1_p50_ms"]),
                ),
                Row(f"tagger {label}: model files (bytes)", s[f"{key}_model_bytes"]),
            ]
        rows += [
            Row(
                "tagger ONNX int8: peak RSS tagging the test split (MB)", s["onnx_int8_peak_rss_mb"]
            ),
            Row("tagger ONNX int8: cold start (s)", s["onnx_int8_cold_start_s"]),
            Row(
                "serve: 16 clients, 1 sentence each (requests/s)",
                s["serve_requests_per_s"],
                note=self.why("serve"),
            ),
            Row("serve: p50 latency (ms)", s["serve_p50_ms"]),
            Row("serve: p99 latency (ms)", s["serve_p99_ms"]),
            Row("serve: errors", s["serve_errors"]),
        ]
        return rows


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        print(f"benchmarks: error: {err}", file=sys.stderr)
        return 2
    bench = Bench(options)
    summary = bench.run()
    machine = machine_info(ROOT)
    # The figures are only meaningful on an otherwise idle machine: the load says if it was.
    machine["load_average_before"] = bench.load_before
    machine["load_average_after"] = _load_average()
    print(table(bench.rows(summary)))
    results = {
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in options.items()},
        "machine": machine,
        "summary": summary,
        "parts": bench.parts,
        "notes": bench.notes,
        "errors": bench.errors,
    }
    try:
        path = write_results(options["out_dir"], results)
        summary["results_file"] = str(path)
    except OSError as err:
        bench.errors["results_file"] = str(err)
        summary["results_file"] = None
    summary["machine"] = machine
    summary["notes"] = {**bench.notes, **bench.errors}
    print(json.dumps(summary, default=str))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
