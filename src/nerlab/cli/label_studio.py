"""`make label-studio-backend` / `nerlab-label-studio-backend`: a Label Studio ML backend.

    nerlab-label-studio-backend model_dir=DIR|models:/NAME@ALIAS [port=9090] [host=127.0.0.1]
                                [work_dir=label-studio-backend] [train_every=0]
                                [epochs=5] [lifetime=0]

Label Studio connects to ``http://HOST:PORT`` (Settings > Model); the protocol and what
``train_every`` does: :mod:`nerlab.integrations.label_studio`.
"""

from __future__ import annotations

from nerlab.cli.options import main_of


def backend(options: dict[str, str]) -> int:
    import uvicorn

    from nerlab.errors import NerlabError
    from nerlab.integrations.label_studio import Backend, build_app

    if "model_dir" not in options:
        raise NerlabError("give model_dir=DIR (or models:/NAME@ALIAS)")
    state = Backend(
        options["model_dir"],
        options.get("work_dir", "label-studio-backend"),
        train_every=int(options.get("train_every", 0)),
        train_overrides=(f"trainer.max_epochs={int(options.get('epochs', 5))}",),
        tracking_uri=options.get("tracking_uri"),
    )
    config = uvicorn.Config(
        build_app(state),
        host=options.get("host", "127.0.0.1"),
        port=int(options.get("port", 9090)),
        log_level="warning",
    )
    server = uvicorn.Server(config)
    lifetime = float(options.get("lifetime", 0))
    if lifetime > 0:  # a bounded life (tests): stop as Ctrl-C would
        import threading

        timer = threading.Timer(lifetime, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    server.run()
    return 0


main = main_of(
    "nerlab-label-studio-backend",
    backend,
    allowed=(
        "model_dir",
        "port",
        "host",
        "work_dir",
        "train_every",
        "epochs",
        "lifetime",
        "tracking_uri",
    ),  # fmt: skip
)


if __name__ == "__main__":
    raise SystemExit(main())
