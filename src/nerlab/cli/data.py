"""`make data` / `nerlab-data`: fetch a registered data set, or check a column file.

    nerlab-data [name=conll2003] [dir=data/conll2003] [base_url=URL] [force=true]
    nerlab-data [check] file=train.txt [tag_column=-1] [on_invalid=error]
    nerlab-data convert input=FILE output=FILE [from=conll|jsonl|spacy] [to=...]
                        [tag_column=-1] [tokenize=whitespace|words]

Arguments are ``key=value`` pairs, the way make passes them. Errors print one line and exit 2.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

from nerlab.cli.options import parse_options, run
from nerlab.errors import NerlabError


def _parse(args: list[str]) -> tuple[str, dict[str, str]]:
    command = None
    if args and "=" not in args[0] and not args[0].startswith("-"):
        command, args = args[0], args[1:]
    options = parse_options(args)
    if command is None:  # make passes only key=value: a file means check
        command = "check" if "file" in options else "download"
    return command, options


def _download(options: dict[str, str]) -> dict:
    from nerlab.data.download import download_dataset
    from nerlab.data.registry import get_dataset

    spec = get_dataset(options.get("name", "conll2003"))
    dest = options.get("dir", f"data/{spec.name}")
    path = download_dataset(
        spec, dest, base_url=options.get("base_url"), force=options.get("force") == "true"
    )
    return {"dataset": spec.name, "dir": str(path), "files": sorted(spec.files)}


def _check(options: dict[str, str]) -> dict:
    from nerlab.data.conll import read_conll, to_iob2

    if "file" not in options:
        raise NerlabError("nerlab-data check needs file=PATH")
    path = options["file"]
    sentences = read_conll(path, int(options.get("tag_column", -1)))
    iob2, scheme, repaired = to_iob2(
        sentences, path, on_invalid=options.get("on_invalid", "repair")
    )
    types = Counter(t[2:] for s in iob2 for t in s.tags if t.startswith("B-"))
    return {
        "file": path,
        "sentences": len(iob2),
        "tokens": sum(len(s.tokens) for s in iob2),
        "scheme": scheme,
        "repaired_sentences": repaired,
        "entities": dict(sorted(types.items())),
    }


def _convert(options: dict[str, str]) -> dict:
    from nerlab.data.formats import convert

    for key in ("input", "output"):
        if key not in options:
            raise NerlabError(f"nerlab-data convert needs {key}=FILE")
    return convert(
        options["input"],
        options["output"],
        source_format=options.get("from"),
        target_format=options.get("to"),
        tag_column=int(options.get("tag_column", -1)),
        tokenize=options.get("tokenize", "whitespace"),
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv

    def body() -> int:
        command, options = _parse(args)
        if command == "download":
            result = _download(options)
        elif command == "check":
            result = _check(options)
        elif command == "convert":
            result = _convert(options)
        else:
            raise NerlabError(f"unknown command {command!r}; expected download, check or convert")
        print(json.dumps(result))
        return 0

    return run("nerlab-data", body)


if __name__ == "__main__":
    sys.exit(main())
