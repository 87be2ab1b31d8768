"""Where the project's files are, and the one way this package writes a file.

:data:`REPO_ROOT` is the checkout the package is installed from (editable install, as the
Makefile does it); :data:`CONF_DIR` holds the Hydra configs. Every file the package writes
(model weights, ``model_info.json``, checkpoints, predictions, downloads) goes through
:func:`atomic_path`: it is written under a temporary name beside the target and renamed into
place, so a crash never leaves a half-written file and an older file stays intact until the new
one is complete. The file gets the permissions the process umask gives a new file (0644 under
the usual 022), whatever the writer used for its temporary file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it goes.

    The temporary name is unique (process id and a random part), so two processes writing the
    same target never write into each other's file; the last one to finish wins.

    >>> with atomic_path("out.txt") as tmp:
    ...     tmp.write_text("done")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)
