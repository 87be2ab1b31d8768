"""The batching server under load: ``nerlab-serve`` on 127.0.0.1 and concurrent clients.

The server (:mod:`nerlab.cli.serve`) is started on a free port for a saved model directory and
polled on ``/health`` until it answers. Then ``concurrency`` clients (asyncio, one keep-alive
connection each, in this process) send ``POST /invocations`` with one test sentence per request
for ``seconds`` seconds; every answer must be 200 with one prediction list. Reports requests per
second, the p50 and p99 latency and the number of errors; the server is stopped at the end
(terminate, then kill after 30 s). Both ends share this machine's cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, server: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the server did not answer {url} within {seconds:.0f} s")


async def _client(port: int, bodies: list[bytes], offset: int, stop: float, out: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < stop:
            body = bodies[i % len(bodies)]
            i += 1
            head = (
                f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            start = time.perf_counter()
            writer.write(head.encode() + body)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            payload = await reader.readexactly(length)
            out["latencies"].append((time.perf_counter() - start) * 1000)
            ok = status_line.split()[1:2] == [b"200"]
            if ok:
                try:
                    ok = len(json.loads(payload)["predictions"]) == 1
                except (ValueError, KeyError, TypeError):
                    ok = False
            if not ok:
                out["errors"] += 1
    finally:
        writer.close()


async def _load(port: int, bodies: list[bytes], concurrency: int, seconds: float) -> dict:
    out: dict = {"latencies": [], "errors": 0}
    stop = time.perf_counter() + seconds
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, bodies, i * 97, stop, out) for i in range(concurrency)))
    out["seconds"] = time.perf_counter() - start
    return out


def run(
    model_dir: Path,
    test_file: Path,
    *,
    concurrency: int = 16,
    seconds: float = 10.0,
    backend: str = "onnx",
    quantize: str | None = "int8",
    max_batch_size: int = 32,
    batch_timeout: float = 0.005,
) -> dict:
    from nerlab.data import read_conll

    sentences = [" ".join(s.tokens) for s in read_conll(test_file)][:2000]
    bodies = [json.dumps({"inputs": [text]}).encode() for text in sentences]
    port = _free_port()
    command = [
        str(Path(sys.executable).parent / "nerlab-serve"),
        f"model_dir={model_dir}",
        f"backend={backend}",
        f"port={port}",
        f"max_batch_size={max_batch_size}",
        f"batch_timeout={batch_timeout}",
    ]
    if quantize:
        command.append(f"quantize={quantize}")
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ}
    )
    try:
        _wait_up(f"http://127.0.0.1:{port}/health", server, 120)
        asyncio.run(_load(port, bodies, concurrency, 1.0))  # warm-up
        result = asyncio.run(_load(port, bodies, concurrency, seconds))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    latencies = result["latencies"]
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [None] * 99
    return {
        "requests": len(latencies),
        "seconds": result["seconds"],
        "requests_per_s": len(latencies) / result["seconds"],
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": cuts[98],
        "errors": result["errors"],
        "concurrency": concurrency,
        "backend": backend,
        "quantize": quantize,
        "max_batch_size": max_batch_size,
        "batch_timeout": batch_timeout,
    }
