"""Converting labelled data between the formats people annotate and train in.

- ``conll``: column files, one token a line, a blank line between sentences (this package's
  training format; tags in IOB2 on output, any scheme on input).
- ``jsonl``: character-offset JSON lines, as doccano and Label Studio export and import them:
  ``{"text": "...", "label": [[start, end, "LABEL"], ...]}``, ``end`` exclusive. On input the
  spans may also sit under ``labels`` or ``entities``, and a span may be an object
  (``{"start", "end", "label"}`` or Label Studio's ``{"start", "end", "labels": [...]}``).
  A ``.json`` file holding a JSON array of such records is read too, and so is Label Studio's
  full JSON export (``{"data": {"text"}, "annotations": [{"result": [...]}]}``: the last
  annotation not cancelled).
- ``spacy``: spaCy's binary ``DocBin`` (``.spacy``), which ``spacy train`` reads; each Doc
  carries its tokens, their trailing spaces and its entities (``doc.ents``).

Everything passes through :class:`Example`: tokens, IOB2 tags, the text and each token's
character offsets in it. A CoNLL sentence becomes a text with its tokens joined by single
spaces; a JSONL text is split on whitespace and, where a span boundary falls inside a word, at
that boundary too (``tokenize="words"`` uses the CoNLL-style tokenizer of ``make predict``
instead). So CoNLL -> JSONL -> CoNLL gives back the same tokens and entities.

Bad records (spans that overlap, run past the text, are empty, or a record without text) raise
a :class:`~nerlab.errors.DataFormatError` naming the file and line (the record number for
``.spacy``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nerlab.data.conll import iter_conll, to_iob2, write_conll
from nerlab.data.tag_schemes import conlleval_spans, from_spans
from nerlab.data.tokenizer import TOKEN_PATTERN
from nerlab.errors import DataFormatError, NerlabError
from nerlab.files import atomic_path

FORMATS = ("conll", "jsonl", "spacy")
SUFFIXES = {
    ".conll": "conll",
    ".txt": "conll",
    ".bio": "conll",
    ".iob": "conll",
    ".tsv": "conll",
    ".jsonl": "jsonl",
    ".json": "jsonl",  # a JSON array of the same records (Label Studio's JSON exports)
    ".spacy": "spacy",
}
SPAN_KEYS = ("label", "labels", "entities")
_WORD = re.compile(r"\S+")
_LABEL = re.compile(r"^[^\s]+$")


@dataclass
class Example:
    """One labelled text: ``tokens`` with IOB2 ``tags``, the ``text`` and each token's
    ``(start, end)`` in it; ``where`` is the line (or record) it came from."""

    tokens: list[str]
    tags: list[str]
    text: str
    offsets: list[tuple[int, int]]
    where: int | None = None

    @classmethod
    def from_tokens(cls, tokens: Sequence[str], tags: Sequence[str], where=None) -> Example:
        offsets, start = [], 0
        for token in tokens:
            offsets.append((start, start + len(token)))
            start += len(token) + 1
        return cls(list(tokens), list(tags), " ".join(tokens), offsets, where)

    def doccano(self) -> dict:
        """The record doccano and Label Studio import: ``{"text", "label": [[start, end,
        label], ...]}``."""
        return doccano_record(self.text, self.char_spans())

    def char_spans(self) -> list[tuple[int, int, str]]:
        """The entities as ``(start, end, label)`` character spans, ``end`` exclusive."""
        return [
            (self.offsets[first][0], self.offsets[last][1], label)
            for label, first, last in conlleval_spans(self.tags)
        ]


def doccano_record(text: str, spans: Iterable[Sequence]) -> dict:
    """``{"text": text, "label": [[start, end, label], ...]}``: a text with character-offset
    spans as doccano and Label Studio import and export it."""
    return {"text": text, "label": [[int(s), int(e), str(label)] for s, e, label in spans]}


def format_of(path: str | os.PathLike, given: str | None = None) -> str:
    """The format named by ``given`` or by the file's extension."""
    if given:
        if given not in FORMATS:
            raise NerlabError(f"unknown format {given!r}; expected one of {', '.join(FORMATS)}")
        return given
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise NerlabError(
            f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
            f"name one with from=/to= ({', '.join(FORMATS)})"
        )
    return SUFFIXES[suffix]


# ---------------------------------------------------------------------------- CoNLL


def read_conll_examples(path: str | os.PathLike, tag_column: int = -1) -> Iterator[Example]:
    sentences = list(iter_conll(path, tag_column))
    if not sentences:
        raise DataFormatError(path, None, "at least one sentence", "an empty file")
    iob2, _, _ = to_iob2(sentences, path)
    for sentence in iob2:
        yield Example.from_tokens(sentence.tokens, sentence.tags, sentence.line)


def write_conll_examples(path: str | os.PathLike, examples: Iterable[Example]) -> int:
    rows = (zip(e.tokens, e.tags, strict=True) for e in examples if e.tokens)
    return write_conll(path, rows)


# ---------------------------------------------------------------------------- JSONL


def _span(raw, path, line: int, index: int) -> tuple[int, int, str]:
    """``[start, end, label]`` or ``{"start", "end", "label" | "labels"}`` -> a tuple."""
    if isinstance(raw, dict):
        label = raw.get("label", raw.get("labels"))
        if isinstance(label, list) and len(label) == 1:
            label = label[0]
        raw = [raw.get("start"), raw.get("end"), label]
    if not (isinstance(raw, list | tuple) and len(raw) == 3):
        raise DataFormatError(path, line, "a span [start, end, label]", f"span {index} {raw!r}")
    start, end, label = raw
    if not (type(start) is int and type(end) is int):
        raise DataFormatError(
            path, line, "integer character offsets", f"span {index} {list(raw)!r}"
        )
    if not (isinstance(label, str) and _LABEL.match(label)):
        raise DataFormatError(path, line, "a label without spaces", f"span {index} label {label!r}")
    return start, end, label


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop whitespace an annotator's selection caught at either end of a span."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def text_to_example(
    text: str,
    spans: Sequence[tuple[int, int, str]],
    *,
    path=None,
    line: int | None = None,
    tokenize: str = "whitespace",
) -> Example:
    """Tokens and IOB2 tags of a text with character ``spans`` (checked: in range, not empty,
    not overlapping); tokens are cut at every span boundary."""
    checked = []
    for start, end, label in spans:
        if not 0 <= start < end <= len(text):
            raise DataFormatError(
                path,
                line,
                f"a span with 0 <= start < end <= {len(text)} (the text's length)",
                f"[{start}, {end}, {label!r}]",
            )
        a, b = _trimmed(text, start, end)
        if a == b:
            raise DataFormatError(
                path, line, "a span covering some text", f"[{start}, {end}, {label!r}] (spaces)"
            )
        checked.append((a, b, label, (start, end)))
    checked.sort()
    for (_, b1, l1, raw1), (a2, _, l2, raw2) in zip(checked, checked[1:], strict=False):
        if a2 < b1:
            raise DataFormatError(
                path,
                line,
                "spans that do not overlap",
                f"[{raw1[0]}, {raw1[1]}, {l1!r}] overlapping [{raw2[0]}, {raw2[1]}, {l2!r}]",
            )
    if tokenize == "words":
        pieces = [(m.start(), m.end()) for m in TOKEN_PATTERN.finditer(text)]
    elif tokenize == "whitespace":
        pieces = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    else:
        raise NerlabError(f"tokenize must be whitespace or words, found {tokenize!r}")
    cuts = {a for a, _, _, _ in checked} | {b for _, b, _, _ in checked}
    offsets: list[tuple[int, int]] = []
    for a, b in pieces:
        inner = sorted(c for c in cuts if a < c < b)
        for left, right in zip([a, *inner], [*inner, b], strict=True):
            offsets.append((left, right))
    first_of = {a: i for i, (a, _) in enumerate(offsets)}
    last_of = {b: i for i, (_, b) in enumerate(offsets)}
    chunks = []
    for a, b, label, _ in checked:
        if a not in first_of or b not in last_of:  # only whitespace-free tokenizers get here
            raise DataFormatError(
                path, line, "a span on token boundaries", f"[{a}, {b}, {label!r}]"
            )
        chunks.append((label, first_of[a], last_of[b]))
    tokens = [text[a:b] for a, b in offsets]
    return Example(tokens, from_spans(len(tokens), chunks, "iob2"), text, offsets, line)


def _records(path: Path) -> Iterator[tuple[int, object]]:
    """``(line or record number, record)`` of a JSON-lines file, or of a JSON array (Label
    Studio's JSON and JSON_MIN exports), numbered from 1."""
    with path.open("r", encoding="utf-8") as fh:
        head = fh.read(1)
        while head and head.isspace():
            head = fh.read(1)
        fh.seek(0)
        if head == "[":
            try:
                records = json.load(fh)
            except json.JSONDecodeError as err:
                raise DataFormatError(
                    path, err.lineno, "a JSON array of records", f"bad JSON ({err.msg})"
                ) from None
            yield from enumerate(records, start=1)
            return
        for line, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                yield line, json.loads(raw)
            except json.JSONDecodeError as err:
                raise DataFormatError(
                    path, line, "one JSON object", f"bad JSON ({err.msg})"
                ) from None


def _annotation_spans(record: dict) -> list | None:
    """The spans of a Label Studio task's last annotation that was not cancelled (its
    ``labels`` results' values), or None when the record has no ``annotations``."""
    annotations = record.get("annotations")
    if not isinstance(annotations, list):
        return None
    kept = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        return []
    return [
        r["value"]
        for r in kept[-1].get("result") or []
        if isinstance(r, dict) and r.get("type") == "labels" and isinstance(r.get("value"), dict)
    ]


def read_jsonl_examples(
    path: str | os.PathLike, *, tokenize: str = "whitespace"
) -> Iterator[Example]:
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "an existing file", "no such file")
    for line, record in _records(path):
        if not isinstance(record, dict):
            raise DataFormatError(path, line, "a JSON object", type(record).__name__)
        text = record.get("text", (record.get("data") or {}).get("text"))
        if not isinstance(text, str):
            raise DataFormatError(path, line, 'a string "text"', repr(text)[:60])
        raw_spans = _annotation_spans(record)
        if raw_spans is None:
            raw_spans = next((record[k] for k in SPAN_KEYS if k in record), [])
        if not isinstance(raw_spans, list):
            raise DataFormatError(path, line, "a list of spans", repr(raw_spans)[:60])
        spans = [_span(s, path, line, i) for i, s in enumerate(raw_spans)]
        yield text_to_example(text, spans, path=path, line=line, tokenize=tokenize)


def write_jsonl_examples(path: str | os.PathLike, examples: Iterable[Example]) -> int:
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for example in examples:
            fh.write(json.dumps(example.doccano(), ensure_ascii=False))
            fh.write("\n")
            count += 1
    return count


# ---------------------------------------------------------------------------- spaCy DocBin


def _spacy():
    try:
        import spacy
        from spacy.tokens import Doc, DocBin, Span
    except ImportError:  # pragma: no cover - spaCy is a project dependency
        raise NerlabError("the spacy format needs spaCy: pip install 'spacy>=3.7,<4'") from None
    return spacy, Doc, DocBin, Span


def read_spacy_examples(path: str | os.PathLike) -> Iterator[Example]:
    spacy, _, DocBin, _ = _spacy()
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "an existing file", "no such file")
    try:
        docs = DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab)
        for number, doc in enumerate(docs, start=1):
            chunks = [(ent.label_, ent.start, ent.end - 1) for ent in doc.ents]
            tokens = [t.text for t in doc]
            offsets = [(t.idx, t.idx + len(t.text)) for t in doc]
            tags = from_spans(len(tokens), chunks, "iob2")
            yield Example(tokens, tags, doc.text, offsets, number)
    except (ValueError, KeyError, OSError) as err:
        found = f"{type(err).__name__}: {err}"
        raise DataFormatError(path, None, "a spaCy DocBin file", found) from None


def write_spacy_examples(path: str | os.PathLike, examples: Iterable[Example]) -> int:
    spacy, Doc, DocBin, Span = _spacy()
    vocab = spacy.blank("xx").vocab
    doc_bin = DocBin(attrs=["ORTH", "ENT_IOB", "ENT_TYPE"], store_user_data=False)
    count = 0
    for example in examples:
        spaces = [
            end < start_next
            for (_, end), (start_next, _) in zip(example.offsets, example.offsets[1:], strict=False)
        ]
        trailing = bool(example.offsets) and example.offsets[-1][1] < len(example.text)
        doc = Doc(vocab, words=example.tokens, spaces=[*spaces, trailing][: len(example.tokens)])
        doc.ents = [
            Span(doc, first, last + 1, label=label)
            for label, first, last in conlleval_spans(example.tags)
        ]
        doc_bin.add(doc)
        count += 1
    with atomic_path(path) as tmp:
        doc_bin.to_disk(tmp)
    return count


# ---------------------------------------------------------------------------- convert


def read_examples(
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    tag_column: int = -1,
    tokenize: str = "whitespace",
) -> Iterator[Example]:
    fmt = format_of(path, fmt)
    if fmt == "conll":
        return read_conll_examples(path, tag_column)
    if fmt == "jsonl":
        return read_jsonl_examples(path, tokenize=tokenize)
    return read_spacy_examples(path)


def write_examples(path: str | os.PathLike, examples: Iterable[Example], fmt=None) -> int:
    fmt = format_of(path, fmt)
    writer = {
        "conll": write_conll_examples,
        "jsonl": write_jsonl_examples,
        "spacy": write_spacy_examples,
    }[fmt]
    return writer(path, examples)


def convert(
    source: str | os.PathLike,
    target: str | os.PathLike,
    *,
    source_format: str | None = None,
    target_format: str | None = None,
    tag_column: int = -1,
    tokenize: str = "whitespace",
) -> dict:
    """Convert ``source`` to ``target`` (formats from the extensions unless given); the target
    is written under a temporary name and renamed only when every record converted."""
    src_fmt = format_of(source, source_format)
    dst_fmt = format_of(target, target_format)
    if Path(source).resolve() == Path(target).resolve():
        raise NerlabError(f"{target}: the output would overwrite the input")
    examples = list(read_examples(source, src_fmt, tag_column=tag_column, tokenize=tokenize))
    written = write_examples(target, examples, dst_fmt)
    entities = sum(len(conlleval_spans(e.tags)) for e in examples)
    return {
        "input": str(source),
        "from": src_fmt,
        "output": str(target),
        "to": dst_fmt,
        "records": written,
        "entities": entities,
    }
