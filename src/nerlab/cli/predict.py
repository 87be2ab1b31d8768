"""`make predict` / `nerlab-predict` and `make interactive` / `nerlab-interactive`.

nerlab-predict model_dir=DIR input=FILE output=FILE [format=jsonl|conll|doccano]
               [input_format=text|conll] [min_confidence=0.5] [batch_size=64]
               [chunk=2000] [device=cpu] [backend=torch|onnx] [quantize=int8]
nerlab-interactive model_dir=DIR     (or --model_path W --model_info_path I)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from nerlab.cli.options import load_tagger, main_of
from nerlab.data.conll import docstart_block, document_ids, iter_conll, sentence_block
from nerlab.data.formats import Example, doccano_record
from nerlab.errors import NerlabError
from nerlab.files import atomic_path
from nerlab.inference import entities

MAX_INTERACTIVE_CHARS = 100_000
CONLL_SUFFIXES = (".conll", ".bio", ".iob", ".tsv")


def _text_records(path: Path) -> Iterator[str]:
    with path.open("r", encoding="utf-8", errors="strict", newline=None) as fh:
        for line in fh:
            yield line.rstrip("\n")


def _chunks(records: Iterable, size: int, whole_documents: bool = False) -> Iterator[list]:
    """Lists of ``size`` records; with ``whole_documents`` (sentences with a ``doc``) a chunk
    ends only where a document does."""
    chunk: list = []
    for record in records:
        if len(chunk) >= size and (not whole_documents or record.doc != chunk[-1].doc):
            yield chunk
            chunk = []
        chunk.append(record)
    if chunk:
        yield chunk


def predict(options: dict[str, str]) -> int:
    """Tag a file chunk by chunk into a temporary file renamed at the end."""
    for key in ("input", "output"):
        if key not in options:
            raise NerlabError(f"give {key}=FILE")
    source, target = Path(options["input"]), Path(options["output"])
    if not source.is_file():
        raise NerlabError(f"{source}: no such file")
    out_format = options.get("format", "jsonl")
    if out_format not in ("jsonl", "conll", "doccano"):
        raise NerlabError(f"format must be jsonl, conll or doccano, found {out_format!r}")
    in_format = options.get("input_format", "auto")
    if in_format == "auto":
        in_format = "conll" if source.suffix in CONLL_SUFFIXES else "text"
    if in_format not in ("text", "conll"):
        raise NerlabError(f"input_format must be text or conll, found {in_format!r}")
    min_confidence = float(options.get("min_confidence", 0.0))
    if not 0.0 <= min_confidence <= 1.0:
        raise NerlabError(f"min_confidence must be in [0, 1], found {min_confidence}")
    tagger = load_tagger(options)
    chunk_size = int(options.get("chunk", 2000))
    if in_format == "conll":
        records = iter_conll(source, labelled=False)
    else:
        records = _text_records(source)
    progress = _progress(source)
    written = 0
    whole = in_format == "conll" and tagger.uses_documents
    try:
        with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as out:
            last_doc = [None]
            for chunk in _chunks(records, chunk_size, whole):
                out.writelines(
                    _format(tagger, chunk, in_format, out_format, min_confidence, last_doc)
                )
                written += len(chunk)
                progress(len(chunk))
    except UnicodeDecodeError as err:
        raise NerlabError(f"{source}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    print(json.dumps({"input": str(source), "output": str(target), "records": written}))
    return 0


def _format(
    tagger,
    chunk: list,
    in_format: str,
    out_format: str,
    min_confidence: float = 0.0,
    last_doc: list | None = None,
) -> Iterator[str]:
    """The output lines of one chunk of records (texts, or sentences for CoNLL input, whose
    documents a document-context model reads; CoNLL output keeps their ``-DOCSTART-`` lines).

    ``doccano`` writes pre-annotations as doccano and Label Studio import them:
    ``{"text", "label": [[start, end, label], ...]}`` (CoNLL input: the tokens joined by
    spaces, as ``make convert`` writes them)."""
    documents = None
    if in_format == "conll":
        if tagger.uses_documents:
            documents = document_ids(chunk)
        sentences, chunk = chunk, [s.tokens for s in chunk]
    if in_format == "conll" and out_format == "doccano":
        found_all = tagger.predict_tokens(chunk, min_confidence=min_confidence, documents=documents)
        for tokens, found in zip(chunk, found_all, strict=True):
            offsets = Example.from_tokens(tokens, []).offsets
            text = " ".join(tokens)
            spans = [
                (offsets[e["first_token"]][0], offsets[e["last_token"]][1], e["label"])
                for e in found
            ]
            yield json.dumps(doccano_record(text, spans), ensure_ascii=False) + "\n"
        return
    if in_format == "text" and out_format in ("jsonl", "doccano"):
        found_all = tagger.predict(chunk, min_confidence=min_confidence)
        for text, found in zip(chunk, found_all, strict=True):
            if out_format == "doccano":
                record = doccano_record(text, ((e["start"], e["end"], e["label"]) for e in found))
            else:
                record = {"text": text, "entities": found}
            yield json.dumps(record, ensure_ascii=False) + "\n"
        return
    if in_format == "text":
        from nerlab.inference import tokenize

        token_lists = [[t for t, _, _ in tokenize(text)] for text in chunk]
    else:
        token_lists = chunk
    tagged = tagger.tag(token_lists, documents=documents)
    for i, (tokens, tags) in enumerate(zip(token_lists, tagged, strict=True)):
        if out_format == "conll":
            if in_format == "conll" and last_doc is not None:
                doc = sentences[i].doc
                if doc is not None and doc != last_doc[0]:
                    yield docstart_block()
                last_doc[0] = doc
            yield sentence_block(zip(tokens, tags, strict=True))
        else:
            record = {"tokens": tokens, "entities": entities(tags, tokens)}
            yield json.dumps(record, ensure_ascii=False) + "\n"


def _progress(source: Path) -> Callable[[int], None]:
    """A tqdm bar on stderr for inputs over 1 MB, when stderr is a terminal."""
    if source.stat().st_size < 1_000_000 or not sys.stderr.isatty():
        return lambda n: None
    from tqdm import tqdm

    return tqdm(unit=" records", file=sys.stderr).update


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
            shown = entity["text"].replace("\t", " ")
            print(f"{shown}\t{entity['label']}\t{entity['start']}-{entity['end']}")
        print(flush=True)
    return 0


predict_main = main_of("nerlab-predict", predict)
interactive_main = main_of("nerlab-interactive", interactive)


if __name__ == "__main__":
    raise SystemExit(predict_main())
