"""Command-line plumbing shared by the ``nerlab-*`` commands, and the tagging commands.

Options are given as ``key=value`` (the way make passes them) or as ``--key value`` /
``--key=value`` (NLP Architect's style). A user's mistake is printed as one line,
``PROG: error: MESSAGE``, with exit code 2 and no traceback.

    nerlab-predict model_dir=DIR input=FILE output=FILE [format=conll|jsonl]
                   [input_format=text|conll] [batch_size=64] [chunk=2000]
    nerlab-interactive model_dir=DIR     (or --model_path W --model_info_path I)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from nerlab.errors import NerlabError

MAX_INTERACTIVE_CHARS = 100_000


def parse_options(args: list[str], *, flags: tuple[str, ...] = ()) -> dict[str, str]:
    """``["a=1", "--b", "2", "--c=3"]`` -> ``{"a": "1", "b": "2", "c": "3"}``.

    Names in ``flags`` take no value (``--verbose`` -> ``{"verbose": "true"}``).
    """
    options: dict[str, str] = {}
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


def load_tagger(options: dict[str, str]):
    from nerlab.inference import Tagger

    if not any(k in options for k in ("model_dir", "model_info_path")):
        raise NerlabError("give model_dir=DIR (or --model_path FILE --model_info_path FILE)")
    return Tagger.load(
        options.get("model_dir"),
        model_path=options.get("model_path"),
        model_info_path=options.get("model_info_path"),
        device=options.get("device", "cpu"),
        batch_size=int(options.get("batch_size", 64)),
    )


# --------------------------------------------------------------------------- predict
def _text_records(path: Path) -> Iterator[str]:
    with path.open("r", encoding="utf-8", errors="strict", newline=None) as fh:
        for line in fh:
            yield line.rstrip("\n")


def _conll_records(path: Path) -> Iterator[list[str]]:
    """Sentences of a column file, streamed: only the first column (the token) is read."""
    tokens: list[str] = []
    with path.open("r", encoding="utf-8", errors="strict", newline=None) as fh:
        for line in fh:
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if tokens:
                    yield tokens
                    tokens = []
                continue
            tokens.append(fields[0])
    if tokens:
        yield tokens


def _chunks(records: Iterator, size: int) -> Iterator[list]:
    chunk: list = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict(options: dict[str, str]) -> int:
    """Tag a file chunk by chunk, writing to a temporary file renamed at the end."""
    from nerlab.inference import tokenize

    for key in ("input", "output"):
        if key not in options:
            raise NerlabError(f"give {key}=FILE")
    source, target = Path(options["input"]), Path(options["output"])
    if not source.is_file():
        raise NerlabError(f"{source}: no such file")
    out_format = options.get("format", "jsonl")
    if out_format not in ("jsonl", "conll"):
        raise NerlabError(f"format must be jsonl or conll, found {out_format!r}")
    in_format = options.get("input_format", "auto")
    if in_format == "auto":
        in_format = "conll" if source.suffix in (".conll", ".bio", ".iob", ".tsv") else "text"
    if in_format not in ("text", "conll"):
        raise NerlabError(f"input_format must be text or conll, found {in_format!r}")
    tagger = load_tagger(options)
    chunk_size = int(options.get("chunk", 2000))
    records = _conll_records(source) if in_format == "conll" else _text_records(source)
    progress = _progress(source)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    written = 0
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as out:
            for chunk in _chunks(records, chunk_size):
                if in_format == "conll":
                    token_lists = chunk
                    offsets = None
                else:
                    tokenized = [tokenize(text) for text in chunk]
                    token_lists = [[t for t, _, _ in toks] for toks in tokenized]
                    offsets = tokenized
                tags = tagger.tag(token_lists)
                for i, (tokens, seq) in enumerate(zip(token_lists, tags, strict=True)):
                    if out_format == "conll":
                        out.writelines(f"{t} {g}\n" for t, g in zip(tokens, seq, strict=True))
                        out.write("\n")
                    else:
                        record = _record(chunk[i], tokens, seq, offsets[i] if offsets else None)
                        out.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += len(chunk)
                progress(len(chunk))
        os.replace(tmp, target)
    except UnicodeDecodeError as err:
        raise NerlabError(f"{source}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    finally:
        tmp.unlink(missing_ok=True)
    print(json.dumps({"input": str(source), "output": str(target), "records": written}))
    return 0


def _record(original, tokens: list[str], tags: list[str], offsets) -> dict:
    from nerlab.data.tag_schemes import conlleval_spans

    entities = []
    for label, first, last in conlleval_spans(tags):
        if offsets:
            start, end = offsets[first][1], offsets[last][2]
            entities.append(
                {"text": original[start:end], "label": label, "start": start, "end": end}
            )
        else:
            entities.append(
                {
                    "text": " ".join(tokens[first : last + 1]),
                    "label": label,
                    "first_token": first,
                    "last_token": last,
                }
            )
    if isinstance(original, str):
        return {"text": original, "entities": entities}
    return {"tokens": tokens, "entities": entities}


def _progress(source: Path) -> Callable[[int], None]:
    """A tqdm bar on stderr for inputs over 1 MB, when stderr is a terminal."""
    if source.stat().st_size < 1_000_000 or not sys.stderr.isatty():
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(unit=" records", file=sys.stderr)
    return bar.update


# --------------------------------------------------------------------------- interactive
def interactive(options: dict[str, str]) -> int:
    """Read sentences from stdin; print each entity as ``text<TAB>label<TAB>start-end``,
    then a blank line. Prompts only when stdin is a terminal."""
    tagger = load_tagger(options)
    sys.stdin.reconfigure(errors="replace")  # odd bytes become U+FFFD, never a crash
    prompt = sys.stdin.isatty()
    if prompt:
        print("Type a sentence and press Enter (Ctrl-D to quit).", file=sys.stderr)
    while True:
        if prompt:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        text = line.rstrip("\r\n")[:MAX_INTERACTIVE_CHARS]
        for entity in tagger.predict(text):
            label = entity["label"]
            shown = entity["text"].replace("\t", " ")
            print(f"{shown}\t{label}\t{entity['start']}-{entity['end']}")
        print(flush=True)
    return 0


def predict_main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return run("nerlab-predict", lambda: predict(parse_options(args)))


def interactive_main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return run("nerlab-interactive", lambda: interactive(parse_options(args)))
