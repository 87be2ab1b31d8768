"""Tests of the data set registry and the verified downloader, against a local HTTP server.

Nothing here touches the real network: every URL points at 127.0.0.1, and an autouse fixture
makes any connection elsewhere fail the test.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from functools import partial
from pathlib import Path

import pytest

from nerlab.data import download as download_module
from nerlab.data.download import download_dataset, sha256_file
from nerlab.data.registry import (
    MIRROR_ENV_VAR,
    DatasetSpec,
    FileSpec,
    get_dataset,
    list_datasets,
)
from nerlab.errors import DownloadError, NerlabError

CONTENTS = {
    "train.txt": b"-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n. . O O\n",
    "valid.txt": b"Peter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n",
    "test.txt": b"SOCCER NN I-NP O\n- : O O\nJAPAN NNP I-NP I-LOC\n",
}
# An address that refuses connections at once; used as the "registered" URL that a mirror
# replaces, so a bug that ignores the mirror fails fast without leaving the machine.
UNUSED_ORIGIN = "http://127.0.0.1:9/never"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_spec(base: str, contents: dict[str, bytes] = CONTENTS, **overrides: str) -> DatasetSpec:
    """A spec for the fixture files, fetched from `{base}/{filename}`."""
    files = {
        name: FileSpec(url=f"{base}/{name}", sha256=overrides.get(name, _sha(data)), size=None)
        for name, data in contents.items()
    }
    return DatasetSpec(
        name="tiny", description="test fixture", files=files, license="CC0", tag_column=3
    )


def leftovers(folder: Path) -> list[str]:
    """Names of partial downloads left in `folder`."""
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, records every request path, and can misbehave on purpose.

    `/drop/NAME` announces the full length of NAME, sends 10 bytes and closes the connection;
    `/cut/NAME` does the same without a Content-Length header.
    """

    requests: list[str]

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self.requests.append(self.path)
        for prefix, announce in (("/drop/", True), ("/cut/", False)):
            if self.path.startswith(prefix):
                data = CONTENTS[self.path[len(prefix) :]]
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                if announce:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:10])
                self.wfile.flush()
                self.close_connection = True
                return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class LocalServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        handler = type("Handler", (_Handler,), {"requests": self.requests})
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(handler, directory=str(root))
        )
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No mirror from the environment, and no connection outside this machine."""
    monkeypatch.delenv(MIRROR_ENV_VAR, raising=False)
    real = socket.create_connection

    def guarded(address, *args, **kwargs):  # type: ignore[no-untyped-def]
        host = address[0]
        if host not in LOCAL_HOSTS:
            raise AssertionError(f"test tried to reach the network: {address}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    root = tmp_path / "srv"
    root.mkdir()
    for name, data in CONTENTS.items():
        (root / name).write_bytes(data)
    srv = LocalServer(root)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _refused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# --- registry -----------------------------------------------------------------------------


def test_conll2003_spec_lists_the_three_files_with_their_checksums() -> None:
    spec = get_dataset("conll2003")
    assert spec.name == "conll2003"
    assert set(spec.files) == {"train.txt", "valid.txt", "test.txt"}
    assert spec.files["train.txt"].sha256 == (
        "213953b5522fb7924802d883e50f027b2c6ffb5d4d0e63368ed82909f9b60423"
    )
    assert spec.files["valid.txt"].sha256 == (
        "c02eb19809eafb83998326a0481942eb37d96f31826ae387cfe8773699969f5b"
    )
    assert spec.files["test.txt"].sha256 == (
        "dc4ac7f3d6d01a6bec59261814561da3b287b6b493b97d1f69c580b52ec1831b"
    )
    assert all(f.url.startswith("https://") for f in spec.files.values())
    assert spec.tag_column == 3
    assert "conll2003" in list_datasets()
    assert get_dataset(" CoNLL2003 ") is spec


def test_specs_are_frozen_and_hashable() -> None:
    spec = get_dataset("conll2003")
    with pytest.raises(FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.files["extra.txt"] = spec.files["train.txt"]  # type: ignore[index]
    assert hash(spec) == hash(spec)
    with pytest.raises(ValueError, match="sha256"):
        FileSpec(url="http://127.0.0.1/x", sha256="abc")


def test_unknown_dataset_lists_known_names(dest: Path) -> None:
    with pytest.raises(DownloadError) as info:
        get_dataset("conll1999")
    message = str(info.value)
    assert "conll1999" in message and "conll2003" in message and "\n" not in message
    assert isinstance(info.value, NerlabError)
    with pytest.raises(DownloadError, match="conll2003"):
        download_dataset("conll1999", dest, progress=False)
    assert not dest.exists()


def test_mirror_replaces_the_url_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = get_dataset("conll2003")
    assert spec.url_for("valid.txt", "http://mirror.test/ner/") == (
        "http://mirror.test/ner/valid.txt"
    )
    monkeypatch.setenv(MIRROR_ENV_VAR, "file:///srv/conll")
    assert spec.urls() == {
        name: f"file:///srv/conll/{name}" for name in ("train.txt", "valid.txt", "test.txt")
    }
    # An explicit base URL wins over the environment.
    assert spec.url_for("test.txt", "http://other.test") == "http://other.test/test.txt"


# --- downloading --------------------------------------------------------------------------


def test_download_fetches_and_verifies_every_file(server: LocalServer, dest: Path) -> None:
    spec = make_spec(server.base_url)
    result = download_dataset(spec, dest, progress=False)
    assert result == dest
    for name, data in CONTENTS.items():
        assert (dest / name).read_bytes() == data
        assert sha256_file(dest / name) == spec.files[name].sha256
    assert sorted(server.requests) == ["/test.txt", "/train.txt", "/valid.txt"]
    assert leftovers(dest) == []


def test_files_already_present_are_not_fetched_again(server: LocalServer, dest: Path) -> None:
    spec = make_spec(server.base_url)
    dest.mkdir()
    (dest / "train.txt").write_bytes(CONTENTS["train.txt"])
    download_dataset(spec, dest, progress=False)
    assert sorted(server.requests) == ["/test.txt", "/valid.txt"]
    download_dataset(spec, dest, progress=False)
    assert len(server.requests) == 2


def test_base_url_and_environment_mirror_redirect_downloads(
    server: LocalServer, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_spec(UNUSED_ORIGIN)
    download_dataset(spec, dest / "a", base_url=server.base_url + "/", progress=False)
    assert (dest / "a" / "valid.txt").read_bytes() == CONTENTS["valid.txt"]
    monkeypatch.setenv(MIRROR_ENV_VAR, server.base_url)
    download_dataset(spec, dest / "b", progress=False)
    assert (dest / "b" / "test.txt").read_bytes() == CONTENTS["test.txt"]
    assert len(server.requests) == 6


def test_checksum_mismatch_leaves_no_file(server: LocalServer, dest: Path) -> None:
    spec = make_spec(server.base_url, **{"valid.txt": "0" * 64})
    with pytest.raises(DownloadError) as info:
        download_dataset(spec, dest, progress=False)
    message = str(info.value)
    assert "valid.txt" in message and "0" * 64 in message
    assert _sha(CONTENTS["valid.txt"]) in message
    assert "\n" not in message
    assert not (dest / "valid.txt").exists()
    assert leftovers(dest) == []


def test_size_mismatch_is_an_error(server: LocalServer, dest: Path) -> None:
    data = CONTENTS["train.txt"]
    spec = DatasetSpec(
        name="sized",
        description="",
        files={"train.txt": FileSpec(f"{server.base_url}/train.txt", _sha(data), len(data) + 1)},
        license="CC0",
    )
    with pytest.raises(DownloadError, match="bytes"):
        download_dataset(spec, dest, progress=False)
    assert os.listdir(dest) == []


def test_present_file_with_wrong_checksum(server: LocalServer, dest: Path) -> None:
    spec = make_spec(server.base_url)
    dest.mkdir()
    (dest / "test.txt").write_bytes(b"not the test set\n")
    with pytest.raises(DownloadError) as info:
        download_dataset(spec, dest, progress=False)
    message = str(info.value)
    assert "test.txt" in message and "\n" not in message
    assert spec.files["test.txt"].sha256 in message
    assert _sha(b"not the test set\n") in message
    assert (dest / "test.txt").read_bytes() == b"not the test set\n"

    download_dataset(spec, dest, force=True, progress=False)
    assert (dest / "test.txt").read_bytes() == CONTENTS["test.txt"]
    assert leftovers(dest) == []


def test_http_404_names_the_url(server: LocalServer, dest: Path) -> None:
    (server.root / "test.txt").unlink()
    spec = make_spec(server.base_url)
    with pytest.raises(DownloadError) as info:
        download_dataset(spec, dest, progress=False)
    message = str(info.value)
    assert f"{server.base_url}/test.txt" in message and "404" in message
    assert "data.dir" in message and "\n" not in message
    assert not (dest / "test.txt").exists()
    assert leftovers(dest) == []


def test_refused_connection_reports_offline(dest: Path) -> None:
    base = f"http://127.0.0.1:{_refused_port()}"
    with pytest.raises(DownloadError) as info:
        download_dataset(make_spec(base), dest, timeout=5, progress=False)
    message = str(info.value)
    assert f"{base}/train.txt" in message
    assert "offline" in message and "data.dir=" in message
    assert "train.txt, valid.txt and test.txt" in message
    assert "\n" not in message
    assert os.listdir(dest) == []


def test_silent_server_times_out(dest: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection in the backlog but never answers
    try:
        base = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(DownloadError) as info:
            download_dataset(make_spec(base), dest, timeout=0.3, progress=False)
    finally:
        listener.close()
    message = str(info.value)
    assert f"{base}/train.txt" in message and "data.dir" in message
    assert "\n" not in message
    assert os.listdir(dest) == []


@pytest.mark.parametrize("mode", ["drop", "cut"])
def test_connection_dropped_mid_body_leaves_no_partial_file(
    server: LocalServer, dest: Path, mode: str
) -> None:
    spec = make_spec(f"{server.base_url}/{mode}")
    with pytest.raises(DownloadError) as info:
        download_dataset(spec, dest, progress=False)
    message = str(info.value)
    assert f"{server.base_url}/{mode}/train.txt" in message and "\n" not in message
    if mode == "drop":
        assert "connection closed after 10 of" in message
    assert os.listdir(dest) == []


def test_interrupt_removes_the_partial_file(
    server: LocalServer, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(self: object, received: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(download_module._Progress, "update", interrupt)
    with pytest.raises(DownloadError, match="interrupted") as info:
        download_dataset(make_spec(server.base_url), dest, progress=False)
    assert isinstance(info.value.__cause__, KeyboardInterrupt)
    assert os.listdir(dest) == []


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    data = os.urandom(300_000)
    path.write_bytes(data)
    assert sha256_file(path, chunk_size=4096) == _sha(data)
    assert sha256_file(str(path)) == _sha(data)
