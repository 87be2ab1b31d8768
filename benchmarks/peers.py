"""Running measurements in other processes: the peers' venv (``.venv-peers``, made by
``make peers``) and fresh processes of the project's own venv.

Every child prints its result as one JSON object on its last stdout line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from nerlab.files import REPO_ROOT as ROOT

SRC = ROOT / "src"
PEERS_VENV = ROOT / ".venv-peers"


class ChildFailed(RuntimeError):
    """A measuring child process exited non-zero or printed no JSON."""


def peer_python() -> Path | None:
    """The peers' interpreter, or None when ``make peers`` has not been run."""
    python = PEERS_VENV / "bin" / "python"
    return python if python.exists() else None


def set_threads(threads: int) -> None:
    """Use ``threads`` threads in torch and numba (which share the OpenMP runtime: numba's
    parallel kernels would otherwise reset torch's count to numba's)."""
    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    if threads:
        env["OMP_NUM_THREADS"] = env["NUMBA_NUM_THREADS"] = str(threads)
    return env


def run_json(
    command: list[str], *, threads: int | None = None, timeout: float | None = None
) -> dict:
    """Run ``command`` from the repository root and parse its last stdout line as JSON.

    Its stderr goes straight to ours (progress and warnings stay visible while it runs);
    raises :class:`ChildFailed` when it fails or times out.
    """
    name = " ".join([Path(command[0]).name, *command[1:3]])
    try:
        proc = subprocess.run(
            command,
            cwd=ROOT,
            env=_env(threads),
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise ChildFailed(f"{name}: no result within timeout={timeout} s") from None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ChildFailed(f"{name}: exit status {proc.returncode} (its stderr is above)")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as err:
        raise ChildFailed(f"{name}: its last stdout line is not JSON ({err})") from None


def run_child(
    module: str,
    data_dir: str | Path,
    *args: str,
    quick: bool = False,
    threads: int | None = None,
    timeout: float | None = None,
) -> dict:
    """``python -m MODULE ARGS --json --data-dir DIR [--quick] [--threads N]`` in the project's
    environment, its JSON result (:func:`run_json`)."""
    command = [sys.executable, "-m", module, *args, "--json"]
    command += ["--data-dir", str(Path(data_dir).resolve())]
    if quick:
        command.append("--quick")
    if threads:
        command += ["--threads", str(threads)]
    return run_json(command, threads=threads, timeout=timeout)


def child_main(prog: str, measure, argv: list[str] | None = None) -> None:
    """The command line of a child measurement that takes ``--data-dir``, ``--quick``,
    ``--threads`` and ``--json``: ``measure(data_dir, quick)``, printed by
    :func:`print_result`."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        set_threads(args.threads)
    print_result(measure(args.data_dir, args.quick), args.json)


def peer_has(module: str) -> tuple[bool, str]:
    """Whether ``module`` imports in the peers' venv, and a reason when not."""
    python = peer_python()
    if python is None:
        return False, "peer not installed (no .venv-peers: run `make peers`)"
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    found = subprocess.run([str(python), "-c", code], cwd=ROOT).returncode == 0
    return found, "" if found else f"peer not installed ({module} is not in .venv-peers)"


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB: ``VmHWM`` of ``/proc/self/status``.

    Not ``getrusage().ru_maxrss``: Linux carries the parent's high-water mark over ``fork`` +
    ``exec`` into it, so a child of the bench (which has trained a model by then) would report
    the bench's own peak, not its own.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_result(result: dict, json_only: bool) -> None:
    """A child measurement's output: a readable listing unless ``--json``, then the JSON line
    the parent reads (always last)."""
    if not json_only:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    print(json.dumps(result))


def peer_command(module: str, data_dir: str | Path, *args: str) -> list[str]:
    """``.venv-peers/bin/python -m MODULE ARGS --json --data-dir DIR``, or ChildFailed when
    the peers' venv is missing."""
    python = peer_python()
    if python is None:
        raise ChildFailed("peer not installed (no .venv-peers: run `make peers`)")
    return [str(python), "-m", module, *args, "--json", "--data-dir", str(Path(data_dir).resolve())]
