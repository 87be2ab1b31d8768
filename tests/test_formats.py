"""`make convert` / `nerlab-data convert`: CoNLL, doccano/Label Studio JSONL and spaCy DocBin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_sentences, write_conll

from nerlab.data.conll import read_conll, to_iob2
from nerlab.data.formats import convert, read_examples, text_to_example
from nerlab.errors import DataFormatError

BIN = Path(sys.executable).parent


def convert_cmd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "nerlab-data"), "convert", *args], capture_output=True, text=True, timeout=120
    )


def gold(path: Path) -> list[tuple[list[str], list[str]]]:
    sentences, _, _ = to_iob2(read_conll(path))
    return [(s.tokens, s.tags) for s in sentences]


def round_trips(source: Path, tmp: Path) -> None:
    """CoNLL -> JSONL -> spaCy -> JSONL -> CoNLL keeps every token and entity."""
    jsonl, docbin, back, conll = (tmp / n for n in ("a.jsonl", "a.spacy", "b.jsonl", "a.conll"))
    assert convert(source, jsonl)["to"] == "jsonl"
    assert convert(jsonl, docbin)["to"] == "spacy"
    assert convert(docbin, back)["from"] == "spacy"
    assert back.read_bytes() == jsonl.read_bytes()
    summary = convert(back, conll)
    assert gold(conll) == gold(source)
    assert summary["records"] == len(gold(source))
    assert summary["entities"] == sum(t.startswith("B-") for _, tags in gold(source) for t in tags)


def test_round_trips_on_a_fixture_in_iob1(tmp_path):
    sentences = make_sentences(40, seed=5)
    # IOB1 as CoNLL-2003 writes it: I- everywhere, B- only between two chunks of one type
    iob1 = [(t, [x.replace("B-", "I-") for x in tags]) for t, tags in sentences]
    iob1.append((["Paris", "Lima", "today"], ["I-LOC", "B-LOC", "O"]))
    source = write_conll(tmp_path / "in.txt", iob1)
    round_trips(source, tmp_path)
    records = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert records[-1] == {"text": "Paris Lima today", "label": [[0, 5, "LOC"], [6, 10, "LOC"]]}


def test_round_trips_on_conll2003_test(tmp_path, conll_dir):
    round_trips(conll_dir / "test.txt", tmp_path)


def test_jsonl_spans_cut_tokens_and_accept_label_studio_objects(tmp_path):
    example = text_to_example("Hi,John Smith's car.", [(3, 13, "PER")])
    assert example.tokens == ["Hi,", "John", "Smith", "'s", "car."]
    assert example.tags == ["O", "B-PER", "I-PER", "O", "O"]
    words = text_to_example("Hi,John Smith's car.", [(3, 13, "PER")], tokenize="words")
    assert words.tokens == ["Hi", ",", "John", "Smith", "'s", "car", "."]
    source = tmp_path / "ls.jsonl"
    rows = [
        # Label Studio JSON-MIN style spans, a trailing space in the selection
        {
            "text": "Anna met Acme Corp .",
            "label": [
                {"start": 0, "end": 5, "labels": ["PER"]},
                {"start": 9, "end": 18, "label": "ORG"},
            ],
        },
        {"data": {"text": "Nothing here"}},
        {"text": "Tokyo", "entities": [[0, 5, "LOC"]]},
    ]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    examples = list(read_examples(source))
    assert [e.tags for e in examples] == [
        ["B-PER", "O", "B-ORG", "I-ORG", "O"],
        ["O", "O"],
        ["B-LOC"],
    ]
    assert examples[0].char_spans() == [(0, 4, "PER"), (9, 18, "ORG")]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {"text": "John Smith", "label": [[0, 10, "PER"], [5, 10, "ORG"]]},
            "expected spans that do not overlap, found [0, 10, 'PER'] overlapping [5, 10, 'ORG']",
        ),
        (
            {"text": "John", "label": [[0, 9, "PER"]]},
            "expected a span with 0 <= start < end <= 4 (the text's length), found [0, 9, 'PER']",
        ),
        (
            {"text": "John", "label": [[3, 3, "PER"]]},
            "expected a span with 0 <= start < end <= 4 (the text's length), found [3, 3, 'PER']",
        ),
        (
            {"text": "John", "label": [["0", 4, "PER"]]},
            "expected integer character offsets, found span 0 ['0', 4, 'PER']",
        ),
        (
            {"text": "John", "label": [[0, 4, "A B"]]},
            "expected a label without spaces, found span 0 label 'A B'",
        ),
        ({"label": []}, 'expected a string "text", found None'),
    ],
)
def test_bad_records_are_one_line_errors_naming_the_line(tmp_path, record, message):
    source = tmp_path / "bad.jsonl"
    good = {"text": "Fine .", "label": []}
    source.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    target = tmp_path / "out.conll"
    target.write_text("an earlier file\n")
    result = convert_cmd(f"input={source}", f"output={target}")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"nerlab-data: error: {source}:2: {message}"]
    assert target.read_text() == "an earlier file\n"  # nothing written over it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "out.conll"]


def test_cli_formats_from_extensions_or_named(tmp_path):
    source = write_conll(tmp_path / "in.txt", make_sentences(5, seed=1), pos=False)
    out = tmp_path / "out.data"
    result = convert_cmd(f"input={source}", f"output={out}")
    assert result.returncode == 2
    assert "cannot tell the format from the extension '.data'" in result.stderr
    result = convert_cmd(f"input={source}", f"output={out}", "to=jsonl")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["records"] == 5
    assert json.loads(out.read_text().splitlines()[0])["text"] == " ".join(
        make_sentences(5, seed=1)[0][0]
    )
    with pytest.raises(DataFormatError, match="not-there.jsonl: expected an existing file"):
        list(read_examples(tmp_path / "not-there.jsonl"))
