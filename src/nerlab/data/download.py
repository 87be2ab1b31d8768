"""Fetch a registered data set's files, verified by sha256, with the standard library only.

Every file is streamed to a uniquely named temporary file next to its destination while it is
hashed, checked against its registered size and sha256, and only then moved into place
(`nerlab.files.atomic_path`), so a destination file is either absent or complete and verified.
Any failure
(HTTP error, offline, timeout, dropped connection, checksum mismatch, Ctrl-C) removes the
partial file and raises a one-line `DownloadError` naming the URL and what to do instead.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from nerlab.data.registry import DatasetSpec, FileSpec, get_dataset
from nerlab.errors import DownloadError
from nerlab.files import atomic_path

_CHUNK_SIZE = 1 << 16
_USER_AGENT = "nerlab-data/0.1 (+urllib)"

# Errors meaning the machine could not reach the server at all.
_OFFLINE_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ENETDOWN,
    errno.EHOSTDOWN,
    errno.ETIMEDOUT,
    errno.EADDRNOTAVAIL,
}


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """The hexadecimal sha256 of the file at `path`, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download_dataset(
    name_or_spec: str | DatasetSpec,
    dest_dir: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    timeout: float = 30.0,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Download every file of a data set into `dest_dir` and return that folder.

    Files already present with the registered sha256 are kept without any network access.
    A present file with another sha256 is downloaded again when `force`, otherwise it is an
    error. `base_url` (or else the `NERLAB_DATA_MIRROR` environment variable) replaces the
    registered URLs by `{base_url}/{filename}`. `timeout` is in seconds, per connection and
    per read. With `progress`, a byte counter is shown on stderr when it is a terminal.
    """
    spec = name_or_spec if isinstance(name_or_spec, DatasetSpec) else get_dataset(name_or_spec)
    dest = Path(dest_dir).expanduser()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the folder {dest}: {_reason(exc)}") from exc
    if not dest.is_dir():
        raise DownloadError(f"cannot download into {dest}: it is not a folder")

    for filename, file_spec in spec.files.items():
        target = dest / filename
        if target.exists():
            if _is_valid(target, file_spec, spec, force=force):
                continue
        url = spec.url_for(filename, base_url)
        _fetch(url, target, file_spec, spec, timeout=timeout, progress=progress)
    return dest


def _is_valid(target: Path, file_spec: FileSpec, spec: DatasetSpec, *, force: bool) -> bool:
    """Whether an existing `target` is the registered file; raise if not and not `force`."""
    if not target.is_file():
        raise DownloadError(f"cannot download to {target}: something else than a file is there")
    try:
        found = sha256_file(target)
    except OSError as exc:
        raise DownloadError(f"cannot read {target}: {_reason(exc)}") from exc
    if found == file_spec.sha256:
        return True
    if force:
        return False
    raise DownloadError(
        f"{target} does not match data set {spec.name!r}: expected sha256 {file_spec.sha256}, "
        f"found {found}; delete it or download again with force to replace it"
    )


class _NetworkError(Exception):
    """Internal: reading from the server failed (as opposed to writing locally)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _fetch(
    url: str,
    target: Path,
    file_spec: FileSpec,
    spec: DatasetSpec,
    *,
    timeout: float,
    progress: bool,
) -> None:
    """Stream `url` into a temporary file beside `target`, verify it, move it into place."""
    try:
        with atomic_path(target) as part:
            try:
                out = part.open("xb")
            except OSError as exc:
                raise DownloadError(
                    f"cannot write a temporary file in {target.parent}: {_reason(exc)}"
                ) from exc
            with out:
                size, digest = _stream(url, out, target.name, timeout=timeout, progress=progress)
                out.flush()
                os.fsync(out.fileno())
            _verify(url, target.name, size, digest, file_spec, spec)
    except BaseException as exc:
        if isinstance(exc, DownloadError) or not isinstance(exc, Exception | KeyboardInterrupt):
            raise
        cause = exc.cause if isinstance(exc, _NetworkError) else exc
        raise _translate(exc, url, target, spec) from cause


def _stream(
    url: str, out: BinaryIO, filename: str, *, timeout: float, progress: bool
) -> tuple[int, str]:
    """Copy the body of `url` into `out`; return its size and sha256."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    digest = hashlib.sha256()
    received = 0
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()
        raise _NetworkError(exc) from exc
    with response:
        expected = _content_length(response)
        meter = _Progress(filename, expected, enabled=progress)
        try:
            while True:
                try:
                    chunk = response.read(_CHUNK_SIZE)
                except (OSError, http.client.HTTPException) as exc:
                    raise _NetworkError(exc) from exc
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                meter.update(received)
        finally:
            meter.close()
    if expected is not None and received != expected:
        raise _NetworkError(
            ConnectionError(f"connection closed after {received} of {expected} bytes")
        )
    return received, digest.hexdigest()


def _content_length(response: object) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _verify(
    url: str, filename: str, size: int, digest: str, file_spec: FileSpec, spec: DatasetSpec
) -> None:
    if file_spec.size is not None and size != file_spec.size:
        raise DownloadError(
            f"{filename} from {url} has {size} bytes, expected {file_spec.size}; "
            f"the server may hold another version: {_fallback_hint(spec)}"
        )
    if digest != file_spec.sha256:
        raise DownloadError(
            f"{filename} from {url} does not match its checksum: expected sha256 "
            f"{file_spec.sha256}, found {digest}; the server may hold another version: "
            f"{_fallback_hint(spec)}"
        )


def _translate(exc: BaseException, url: str, target: Path, spec: DatasetSpec) -> BaseException:
    """The one-line DownloadError for a failure while fetching `url` into `target`."""
    hint = _fallback_hint(spec)
    if isinstance(exc, KeyboardInterrupt):
        return DownloadError(f"download of {url} interrupted; run again to resume, or {hint}")
    if not isinstance(exc, _NetworkError):
        if isinstance(exc, OSError):
            return DownloadError(f"cannot write {target}: {_reason(exc)}")
        return DownloadError(f"could not download {url} ({_reason(exc)})")
    cause = exc.cause
    if isinstance(cause, urllib.error.HTTPError):
        return DownloadError(
            f"could not download {url} (HTTP {cause.code} {_one_line(cause.reason)}); "
            f"check the URL or set NERLAB_DATA_MIRROR to a mirror holding the files, or {hint}"
        )
    inner = cause.reason if isinstance(cause, urllib.error.URLError) else cause
    if isinstance(inner, FileNotFoundError):
        return DownloadError(f"could not download {url} (no such file); {hint}")
    if isinstance(cause, ValueError) or (
        isinstance(inner, str) and inner.startswith("unknown url type")
    ):
        return DownloadError(
            f"could not download {url} ({_reason(cause)}); check NERLAB_DATA_MIRROR or the "
            f"base URL, or {hint}"
        )
    if _looks_offline(inner):
        return DownloadError(
            f"could not download {url} ({_reason(inner)}); you appear to be offline: {hint}"
        )
    return DownloadError(
        f"could not download {url} ({_reason(inner)}); the connection failed: run again, or {hint}"
    )


def _looks_offline(error: object) -> bool:
    if isinstance(error, socket.gaierror | TimeoutError | ConnectionRefusedError):
        return True
    if isinstance(error, OSError) and error.errno in _OFFLINE_ERRNOS:
        return True
    return isinstance(error, str) and "timed out" in error


def _fallback_hint(spec: DatasetSpec) -> str:
    names = list(spec.files)
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
    return f"put {listed} in a folder and run with data.dir=/that/folder"


def _reason(exc: object) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return _reason(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return _one_line(exc.strerror)
    text = _one_line(str(exc))
    if isinstance(exc, BaseException):
        name = type(exc).__name__
        return f"{name}: {text}" if text else name
    return text or "unknown error"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class _Progress:
    """A byte counter on stderr, redrawn at most ten times a second, only on a terminal."""

    def __init__(self, filename: str, total: int | None, *, enabled: bool) -> None:
        self.filename = filename
        self.total = total
        self.enabled = enabled and _stderr_is_tty()
        self._last = 0.0
        self._drawn = False

    def update(self, received: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and received != self.total:
            return
        self._last = now
        shown = _human(received)
        if self.total:
            shown = f"{shown} / {_human(self.total)} ({100 * received // self.total}%)"
        sys.stderr.write(f"\rdownloading {self.filename}: {shown}\x1b[K")
        sys.stderr.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._drawn = False


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
