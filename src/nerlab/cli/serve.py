"""`make serve` / `nerlab-serve`: a tagger behind HTTP, batching concurrent requests (LitServe).

    nerlab-serve model_dir=DIR|models:/NAME@ALIAS | run_id=ID
                 [backend=torch|onnx] [quantize=int8] [port=8080]
                 [host=127.0.0.1] [max_batch_size=32] [batch_timeout=0.005] [workers=1]
                 [api_servers=1] [max_bytes=1000000] [timeout=30] [tracking_uri=URI]
                 [lifetime=SECONDS] [threads=N]

``POST /invocations`` with ``{"inputs": ["text", ...]}`` answers
``{"predictions": [[{"text", "label", "start", "end", "confidence"}, ...], ...]}``, one list of
entities per text (the protocol of MLflow's scoring server). ``GET /health`` answers ``ok`` once
the model is loaded (``/ping`` too). A body that is not ``{"inputs": [strings]}`` gets 400 with
one line saying what was expected; a body over ``max_bytes`` gets 413; neither reaches the
model, and the server goes on serving.

LitServe runs the tagger in a worker process and hands it the requests that arrive within
``batch_timeout`` seconds of each other, up to ``max_batch_size`` texts' requests, as one batch.
"""

# no `from __future__ import annotations`: LitServe and FastAPI read the request type from
# decode_request's annotation, which must be the class, not a string
import json
import os

import litserve as ls
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, StrictStr

from nerlab.cli.options import main_of
from nerlab.errors import NerlabError

OPTIONS = (
    "model_dir",
    "run_id",
    "backend",
    "quantize",
    "port",
    "host",
    "max_batch_size",
    "batch_timeout",
    "workers",
    "api_servers",
    "max_bytes",
    "timeout",
    "tracking_uri",
    "threads",
    "lifetime",
    "fast_queue",
)


def _expected(found: object) -> str:
    shown = json.dumps(found)[:80] if found is not None else "null"
    return (
        f'expected a JSON object {{"inputs": [text, ...]}} with every input a string, found {shown}'
    )


def _is_valid(body: object) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"inputs"}
        and isinstance(body["inputs"], list)
        and all(isinstance(t, str) for t in body["inputs"])
    )


def _validation_message(body: object) -> str:
    """One line naming the first thing wrong with a request body."""
    if not isinstance(body, dict) or "inputs" not in body:
        return _expected(body)
    inputs = body["inputs"]
    if not isinstance(inputs, list):
        return f'expected "inputs" to be a list of strings, found {json.dumps(inputs)[:80]}'
    for i, value in enumerate(inputs):
        if not isinstance(value, str):
            return f"expected input {i} to be a string, found {json.dumps(value)[:80]}"
    extra = sorted(set(body) - {"inputs"})
    if extra:
        return f'expected only the key "inputs", found {json.dumps(extra)[:80]}'
    return _expected(body)


class Invocation(BaseModel):
    """A request body: ``{"inputs": ["text", ...]}``."""

    model_config = ConfigDict(extra="forbid")
    inputs: list[StrictStr]


class TaggerAPI(ls.LitAPI):
    """Tags the texts of a batch of requests in one call (LitServe spawns it in a worker, so
    it is defined here, at module level, where the worker can import it)."""

    def __init__(self, tagger_options: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tagger_options = tagger_options

    def setup(self, device) -> None:
        from nerlab.inference import Tagger

        self.tagger = Tagger.load(**self.tagger_options)
        self.tagger.predict(["Warm up the tagger ."])

    def decode_request(self, request: Invocation) -> list[str]:
        return request.inputs

    def batch(self, inputs: list[list[str]]) -> list[list[str]]:
        return inputs

    def predict(self, batch: list[list[str]]) -> list[list[list[dict]]]:
        texts = [text for inputs in batch for text in inputs]
        found = self.tagger.predict(texts) if texts else []
        out, start = [], 0
        for inputs in batch:
            out.append(found[start : start + len(inputs)])
            start += len(inputs)
        return out

    def unbatch(self, output: list) -> list:
        return output

    def encode_response(self, output: list[list[dict]]) -> dict:
        return {"predictions": output}


class SizeLimit:
    """Answer 413 to a body over ``max_bytes`` (by its Content-Length, or by counting a chunked
    one) before it is read. Plain ASGI: Starlette's ``BaseHTTPMiddleware`` costs about a
    millisecond a request."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._drain(receive)
                return await self._refuse(int(value), send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge(seen)
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge as err:
            await self._refuse(err.size, send, at_least=True)

    @staticmethod
    async def _drain(receive, limit: int = 64 * 2**20) -> None:
        """Read (and drop) what the client sends, up to ``limit`` bytes, so that it reads the
        413 instead of failing to write the rest of its body."""
        seen = 0
        while seen <= limit:
            message = await receive()
            seen += len(message.get("body", b""))
            if not message.get("more_body"):
                return

    async def _refuse(self, size: int, send, at_least: bool = False) -> None:
        many = f"more than {self.max_bytes}" if at_least else str(size)
        body = json.dumps(
            {"error": f"the body has {many} bytes; at most {self.max_bytes} are accepted"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


def build_server(tagger_options: dict, options: dict[str, str]) -> ls.LitServer:
    """The LitServer for a tagger (``tagger_options``: ``Tagger.load``'s arguments)."""
    api = TaggerAPI(
        tagger_options,
        max_batch_size=int(options.get("max_batch_size", 32)),
        batch_timeout=float(options.get("batch_timeout", 0.005)),
        api_path="/invocations",
    )
    max_bytes = int(options.get("max_bytes", 1_000_000))
    server = ls.LitServer(
        api,
        accelerator="cpu",
        devices=1,
        workers_per_device=int(options.get("workers", 1)),
        timeout=float(options.get("timeout", 30)),
        healthcheck_path="/health",
        fast_queue=options.get("fast_queue", "true") != "false",
    )
    app = server.app
    app.add_middleware(SizeLimit, max_bytes=max_bytes)

    @app.exception_handler(RequestValidationError)
    async def one_line_errors(request: Request, exc: RequestValidationError):
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return JSONResponse({"error": "expected a JSON body, found invalid JSON"}, 400)
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/json") and _is_valid(body):
            message = f"expected Content-Type: application/json, found {content_type or 'none'}"
            return JSONResponse({"error": message}, status_code=415)
        return JSONResponse({"error": _validation_message(body)}, status_code=400)

    @app.get("/ping")
    async def ping():
        return PlainTextResponse("ok")

    return server


def _stop_on_sigterm(lifetime: float) -> None:
    """SIGTERM (and, with ``lifetime`` > 0, that many seconds) stops the server the way Ctrl-C
    does: LitServe then stops its API servers and workers, so no process outlives it."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    if lifetime > 0:
        timer = threading.Timer(lifetime, os.kill, (os.getpid(), signal.SIGINT))
        timer.daemon = True
        timer.start()


def serve(options: dict[str, str]) -> int:
    from nerlab.inference.model_uri import resolve_model_dir

    if "model_dir" in options:  # a directory, or models:/NAME@ALIAS (resolved at start)
        model_dir = resolve_model_dir(options["model_dir"], options.get("tracking_uri"))
    elif "run_id" in options:  # the run's MLflow model
        model_dir = resolve_model_dir(f"runs:/{options['run_id']}", options.get("tracking_uri"))
    else:
        raise NerlabError("give model_dir=DIR or run_id=ID")
    backend = options.get("backend", "torch")
    quantize = options.get("quantize") or None
    tagger_options = {
        "model_dir": model_dir,
        "backend": backend,
        "quantize": None if quantize in (None, "none") else quantize,
        "batch_size": int(options.get("max_batch_size", 32)),
        # one compute thread per worker by default: the HTTP process needs a core too
        "threads": int(options.get("threads", 1)),
    }
    # load once here, so that a bad model directory is a one-line error, not a dead worker
    from nerlab.inference import Tagger

    Tagger.load(**tagger_options)
    server = build_server(tagger_options, options)
    _stop_on_sigterm(float(options.get("lifetime", 0)))
    server.run(
        host=options.get("host", "127.0.0.1"),
        port=int(options.get("port", 8080)),
        num_api_servers=int(options.get("api_servers", 1)),
        log_level="warning",
        generate_client_file=False,
    )
    return 0


main = main_of("nerlab-serve", serve, allowed=OPTIONS)


if __name__ == "__main__":
    raise SystemExit(main())
