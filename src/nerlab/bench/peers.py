"""Running measurements in other processes: the peers' venv (``.venv-peers``, made by
``make peers``) and fresh processes of the project's own venv.

Every child prints its result as one JSON object on its last stdout line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src"
PEERS_VENV = ROOT / ".venv-peers"


class ChildFailed(RuntimeError):
    """A measuring child process exited non-zero or printed no JSON."""


def peer_python() -> Path | None:
    """The peers' interpreter, or None when ``make peers`` has not been run."""
    python = PEERS_VENV / "bin" / "python"
    return python if python.exists() else None


def _env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_json(
    command: list[str], *, threads: int | None = None, timeout: float | None = None
) -> dict:
    """Run ``command`` from the repository root and parse its last stdout line as JSON.

    Its stderr is passed through (warnings and logs stay visible); raises :class:`ChildFailed`
    with the end of its output when it fails.
    """
    proc = subprocess.run(
        command,
        cwd=ROOT,
        env=_env(threads),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )
    sys.stderr.write(proc.stderr)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ChildFailed(f"{Path(command[0]).name} {' '.join(command[1:3])}: exit "
                          f"{proc.returncode}: {tail}")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as err:
        raise ChildFailed(f"last line of {' '.join(command[1:3])} is not JSON: {err}") from None


def peer_has(module: str) -> tuple[bool, str]:
    """Whether ``module`` imports in the peers' venv, and a reason when not."""
    python = peer_python()
    if python is None:
        return False, "peer not installed (no .venv-peers: run `make peers`)"
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    found = subprocess.run([str(python), "-c", code], cwd=ROOT).returncode == 0
    return found, "" if found else f"peer not installed ({module} is not in .venv-peers)"
