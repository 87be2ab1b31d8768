"""What the parts of the bench share: the options, every measurement taken so far (or why it
is missing), and the default model, built, saved and exported at most once, on first use.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks.peers import ChildFailed, peer_has

SPLIT_FILES = ("train.txt", "valid.txt", "test.txt")
#: sentences of the test split tagged under ``quick=true`` (evenly spaced)
QUICK_SENTENCES = 200


class Context:
    """The options (:func:`benchmarks.options.parse_options`), ``results`` by measurement name
    (None: not measured), and the reason of each missing one (``errors``: it failed or had no
    data; ``notes``: it was not asked for, or its peer cannot run)."""

    def __init__(self, options: dict) -> None:
        self.options = options
        self.results: dict[str, dict | None] = {}
        self.notes: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.peer_missing: dict[str, str] = {}  # peer -> why it cannot run
        self._built = None
        self._folder: Path | None = None
        self._exported = False

    # ------------------------------------------------------------------------- options
    @property
    def data_dir(self) -> Path:
        return self.options["data_dir"]

    @property
    def quick(self) -> bool:
        return self.options["quick"]

    @property
    def threads(self) -> int | None:
        return self.options["threads"]

    @property
    def timeout(self) -> int | None:
        return self.options["timeout"]

    def repeats(self, full: int = 3) -> int:
        """Timed passes of a measurement: ``full``, or one under ``quick=true``."""
        return 1 if self.quick else full

    # ------------------------------------------------------------------------- measurements
    def result(self, name: str) -> dict:
        """The measurement ``name``, or ``{}`` when there is none."""
        return self.results.get(name) or {}

    def why(self, name: str) -> str:
        """Why ``name`` has no figures ('' when it ran)."""
        return self.errors.get(name) or self.notes.get(name, "")

    def missing_data(self) -> str | None:
        missing = [f for f in SPLIT_FILES if not (self.data_dir / f).exists()]
        if missing:
            return f"no {', '.join(missing)} in {self.data_dir} (set data_dir=...)"
        return None

    def measure(self, name: str, run: Callable[[Context], dict], *, needs_data: bool) -> None:
        """Run one measurement into ``results[name]``; on failure keep its reason and go on."""
        reason = self.missing_data() if needs_data else None
        if reason is not None:
            self.results[name], self.errors[name] = None, reason
            return
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            self.results[name] = run(self)
        except ChildFailed as err:
            self.results[name], self.errors[name] = None, str(err)
        except Exception as err:  # noqa: BLE001 - one part's failure must not end the bench
            traceback.print_exc(file=sys.stderr)
            self.results[name], self.errors[name] = None, f"{type(err).__name__}: {err}"
        if name in self.errors:
            print(f"[bench] {name} failed: {self.errors[name]}", file=sys.stderr, flush=True)
        print(f"[bench] {name} done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

    def check_peers(self, requirements: dict[str, tuple[str, ...]]) -> None:
        """Which peers can run: every module each needs (``{peer: modules}``) imports in
        ``.venv-peers``; the reason of each that cannot is ``notes[peer]``."""
        for peer, modules in requirements.items():
            if not self.options["peers"]:
                self.peer_missing[peer] = "peers skipped (peers=false)"
                continue
            for module in modules:
                found, reason = peer_has(module)
                if not found:
                    self.peer_missing[peer] = reason
                    break
        self.notes.update(self.peer_missing)

    # ------------------------------------------------------------------------- the default model
    def model(self):
        """The default model of ``make train`` on ``data_dir``, untrained
        (:class:`benchmarks.default_model.DefaultModel`)."""
        if self._built is None:
            from benchmarks.default_model import bench_config, build_default_model

            self._built = build_default_model(bench_config(self.data_dir))
        return self._built

    def model_dir(self) -> Path:
        """:meth:`model` saved as ``make train`` saves it, in a temporary folder."""
        if self._folder is None:
            from nerlab.inference.model_dir import save_model
            from nerlab.training.run import model_info

            built = self.model()
            net = built.module.net
            folder = Path(tempfile.mkdtemp(prefix="nerlab-bench-model-")) / "model"
            save_model(folder, net, model_info(built.cfg, built.datamodule, net))
            self._folder = folder
        return self._folder

    def exported_dir(self) -> Path:
        """:meth:`model_dir` with its ONNX forms (fp32 and int8) written into it."""
        folder = self.model_dir()
        if not self._exported:
            from nerlab.inference.export import export_onnx

            export_onnx(folder, quantize="int8")
            self._exported = True
        return folder

    def test_sentences(self) -> list[list[str]]:
        """The test split's token lists (``QUICK_SENTENCES`` evenly spaced under quick)."""
        from nerlab.data import read_conll

        sentences = [list(tokens) for tokens, _tags in read_conll(self.data_dir / "test.txt")]
        if self.quick and len(sentences) > QUICK_SENTENCES:
            step = len(sentences) / QUICK_SENTENCES
            sentences = [sentences[int(i * step)] for i in range(QUICK_SENTENCES)]
        return sentences

    def close(self) -> None:
        """Remove the saved model directory."""
        if self._folder is not None:
            shutil.rmtree(self._folder.parent, ignore_errors=True)
            self._folder, self._exported = None, False
