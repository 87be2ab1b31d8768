"""The one option and error layer of every ``nerlab-*`` console script.

Options are ``key=value`` (the way make passes them) or ``--key value`` / ``--key=value``
(NLP Architect's style). A user's mistake (any :class:`~nerlab.errors.NerlabError`, or a value
that does not parse) is printed as one line, ``PROG: error: MESSAGE``, with exit code 2 and no
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from nerlab.errors import NerlabError


def parse_options(
    args: Sequence[str], *, flags: tuple[str, ...] = (), allowed: Sequence[str] | None = None
) -> dict[str, str]:
    """``["a=1", "--b", "2", "--c=3"]`` -> ``{"a": "1", "b": "2", "c": "3"}``.

    Names in ``flags`` take no value (``--verbose`` -> ``{"verbose": "true"}``); with
    ``allowed``, any other name is an error that lists the allowed ones.
    """
    options: dict[str, str] = {}
    args = list(args)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            key, eq, value = arg.lstrip("-").partition("=")
            if key in flags:
                options[key] = value if eq else "true"
            elif eq:
                options[key] = value
            elif i + 1 < len(args):
                options[key] = args[i + 1]
                i += 1
            else:
                raise NerlabError(f"--{key} needs a value")
        else:
            key, eq, value = arg.partition("=")
            if not eq:
                raise NerlabError(f"expected key=value or --key value, found {arg!r}")
            options[key] = value
        i += 1
    if allowed is not None:
        unknown = sorted(set(options) - set(allowed) - set(flags))
        if unknown:
            raise NerlabError(
                f"unknown option {unknown[0]!r}; expected one of {', '.join(sorted(allowed))}"
            )
    return options


def run(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command body; report NerlabError (and bad numbers) as one line with exit code 2."""
    try:
        return body() or 0
    except (NerlabError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader went away; nothing more to say
        sys.stderr.close()
        return 0


def main_of(prog: str, command: Callable[[dict[str, str]], int | None], **parse_kwargs):
    """A console-script ``main(argv=None)`` that parses options and runs ``command`` on them."""

    def main(argv: Sequence[str] | None = None) -> int:
        args = sys.argv[1:] if argv is None else argv
        return run(prog, lambda: command(parse_options(args, **parse_kwargs)))

    return main


def load_tagger(options: dict[str, str]):
    """The :class:`~nerlab.inference.Tagger` that ``model_dir=`` (a directory or a
    ``models:/``/``runs:/`` URI of ``tracking_uri=``; or NLP Architect's
    ``--model_path``/``--model_info_path``) names, on ``device=`` with ``batch_size=``;
    ``backend=onnx [quantize=int8]`` runs the model ``make export`` wrote."""
    from nerlab.inference import Tagger

    if not any(k in options for k in ("model_dir", "model_info_path")):
        raise NerlabError("give model_dir=DIR (or --model_path FILE --model_info_path FILE)")
    quantize = options.get("quantize") or None
    return Tagger.load(
        options.get("model_dir"),
        model_path=options.get("model_path"),
        model_info_path=options.get("model_info_path"),
        device=options.get("device", "cpu"),
        batch_size=int(options.get("batch_size", 64)),
        backend=options.get("backend", "torch"),
        quantize=None if quantize in (None, "none", "fp32") else quantize,
        tracking_uri=options.get("tracking_uri"),
    )
