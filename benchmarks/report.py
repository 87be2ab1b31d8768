"""The bench's outputs: the machine it ran on, the table of figures, the JSON results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass
class Row:
    """One line of the table: our figure, the peer's (named), ours/peer."""

    figure: str
    ours: float | None
    peer_name: str = ""
    peer: float | None = None
    ratio: float | None = None
    note: str = ""  # why a figure is missing


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info(root: Path) -> dict:
    import numba
    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "numba_version": numba.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit or None,
    }


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(rows: list[Row]) -> str:
    """``figure | nerlab | peer | ratio``, ratios as ours / peer (above 1: nerlab is faster)."""
    cells = [("figure", "nerlab", "peer", "ratio")]
    for row in rows:
        peer = ""
        if row.peer_name:
            peer = f"{row.peer_name} {fmt(row.peer)}"
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ("n/a" if row.peer_name else "")
        cells.append((row.figure, fmt(row.ours), peer, ratio))
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = []
    for i, c in enumerate(cells):
        lines.append(
            " | ".join(
                (c[j].ljust(widths[j]) if j in (0, 2) else c[j].rjust(widths[j])) for j in range(4)
            ).rstrip()
        )
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    notes = [f"  {row.figure}: {row.note}" for row in rows if row.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def write_results(out_dir: Path, results: dict) -> Path:
    """``bench-<timestamp>.json`` and a copy as ``latest.json``; returns the first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"bench-{stamp}.json"
    text = json.dumps(results, indent=1, default=str)
    path.write_text(text + "\n", encoding="utf-8")
    (out_dir / "latest.json").write_text(text + "\n", encoding="utf-8")
    return path
