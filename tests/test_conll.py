"""The column-file reader and its errors."""

from __future__ import annotations

import pytest

from nerlab.data import read_conll, to_iob2, write_conll
from nerlab.data.conll import Sentence
from nerlab.errors import DataFormatError, NerlabError


def test_reads_columns_spaces_tabs_crlf_and_skips_docstart(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(
        b"-DOCSTART- -X- -X- O\r\n\r\n"
        b"EU\tNNP\tB-NP\tB-ORG\r\n"
        b"rejects  VBZ B-VP   O\r\n"
        b"\r\n\r\n"
        b"Peter NNP B-NP B-PER\n"
        b"Blackburn NNP I-NP I-PER\n"
        b"-DOCSTART- -X- -X- O\n"
        b"BRUSSELS NNP B-NP B-LOC"  # no newline at the end of the file
    )
    sentences = read_conll(path)
    assert [s.tokens for s in sentences] == [
        ["EU", "rejects"],
        ["Peter", "Blackburn"],
        ["BRUSSELS"],
    ]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER", "I-PER"], ["B-LOC"]]
    assert [s.line for s in sentences] == [3, 7, 10]
    tokens, tags = sentences[0]  # the contract's (tokens, tags) pairs
    assert tokens == ["EU", "rejects"] and tags == ["B-ORG", "O"]


def test_tag_column_is_numbered_like_tag_num_and_counts_from_the_end(tmp_path):
    path = tmp_path / "cols.txt"
    path.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n")
    assert read_conll(path, tag_column=-1)[0].tags == ["B-ORG", "O"]
    assert read_conll(path, tag_column=3)[0].tags == ["B-ORG", "O"]
    assert read_conll(path, tag_column=2, check_tags=True)[0].tags == ["B-NP", "B-VP"]
    assert read_conll(path, tag_column=-2)[0].tags == ["B-NP", "B-VP"]
    with pytest.raises(NerlabError, match="token column"):
        read_conll(path, tag_column=0)


def test_unlabelled_reading_keeps_only_tokens(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text("John\nlives\n\nParis\n")
    assert [s.tokens for s in read_conll(path, labelled=False)] == [["John", "lives"], ["Paris"]]


@pytest.mark.parametrize(
    ("content", "line", "expected", "found"),
    [
        (
            b"EU B-ORG\nrejects\n",
            2,
            "at least 2 whitespace-separated columns",
            "1 column 'rejects'",
        ),
        (b"EU B-ORG\n\nPeter B_PER\n", 3, "a tag like O, B-PER or I-PER", "'B_PER'"),
        (b"EU B-ORG\nPeter PER\n", 2, "a tag like O", "'PER'"),
        (b"EU B-ORG\ncaf\xe9 O\n", 2, "UTF-8 text", "b'\\xe9"),
    ],
)
def test_bad_lines_name_file_line_expected_and_found(tmp_path, content, line, expected, found):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataFormatError) as info:
        read_conll(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: expected ")
    assert expected in message and found in message
    assert "\n" not in message


def test_too_few_columns_for_a_positive_tag_column(tmp_path):
    path = tmp_path / "two.txt"
    path.write_text("EU B-ORG\n")
    with pytest.raises(DataFormatError, match=r"two.txt:1: expected at least 4 .*tag_column=3"):
        read_conll(path, tag_column=3)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataFormatError, match="expected an existing file, found no such file"):
        read_conll(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n-DOCSTART- -X- -X- O\n\n")
    with pytest.raises(
        DataFormatError, match="expected at least one sentence, found an empty file"
    ):
        read_conll(empty)


def test_ill_formed_continuations_are_repaired_or_refused(tmp_path, caplog):
    path = tmp_path / "ill.txt"
    path.write_text("a O\nb I-PER\nc I-PER\n\nd B-LOC\ne I-LOC\n\nf B-ORG\ng I-LOC\n")
    sentences = read_conll(path)
    with caplog.at_level("WARNING"):
        fixed, scheme, repaired = to_iob2(sentences, path)
    assert scheme == "iob2" and repaired == 2
    assert [s.tags for s in fixed] == [
        ["O", "B-PER", "I-PER"],
        ["B-LOC", "I-LOC"],
        ["B-ORG", "B-LOC"],
    ]
    assert "repaired 2 ill-formed IOB2 sentence(s)" in caplog.text and "line 2" in caplog.text
    with pytest.raises(
        DataFormatError,
        match=r"ill.txt:2: expected a well-formed IOB2 sequence, found 'I-PER' after 'O'",
    ):
        to_iob2(sentences, path, on_invalid="error")


def test_iob1_and_iobes_files_are_read_as_iob2(tmp_path):
    iob1 = tmp_path / "iob1.txt"
    iob1.write_text("EU I-ORG\nrejects O\nGerman I-MISC\nBritish B-MISC\n")
    fixed, scheme, repaired = to_iob2(read_conll(iob1), iob1)
    assert scheme == "iob1" and repaired == 0
    assert fixed[0].tags == ["B-ORG", "O", "B-MISC", "B-MISC"]
    iobes = tmp_path / "iobes.txt"
    iobes.write_text("Peter B-PER\nBlackburn E-PER\nin O\nParis S-LOC\n")
    fixed, scheme, _ = to_iob2(read_conll(iobes), iobes)
    assert scheme == "iobes" and fixed[0].tags == ["B-PER", "I-PER", "O", "B-LOC"]


def test_write_conll_round_trips(tmp_path):
    path = tmp_path / "out.txt"
    rows = [[("John", "B-PER"), ("runs", "O")], [("Paris", "B-LOC")]]
    write_conll(path, rows)
    assert read_conll(path) == [
        Sentence(["John", "runs"], ["B-PER", "O"]),
        Sentence(["Paris"], ["B-LOC"]),
    ]
    assert not list(tmp_path.glob(".*tmp"))


def test_real_conll2003_counts_and_round_trips(conll_dir):
    from nerlab.data import convert_tags

    expected = {"train": (14041, 203621), "valid": (3250, 51362), "test": (3453, 46435)}
    for split, (n_sent, n_tok) in expected.items():
        sentences = read_conll(conll_dir / f"{split}.txt")
        assert len(sentences) == n_sent
        assert sum(len(s.tokens) for s in sentences) == n_tok
        fixed, scheme, repaired = to_iob2(sentences)
        assert scheme == "iob2" and repaired == 0
        for _, tags in fixed:
            assert convert_tags(convert_tags(tags, "iobes"), "bio") == tags


def test_data_command_checks_a_file_and_reports_problems_on_one_line(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "nerlab-data"
    good = tmp_path / "good.txt"
    good.write_text("EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn I-PER\n")
    result = subprocess.run([str(cli), f"file={good}"], capture_output=True, text=True)
    assert result.returncode == 0
    assert json.loads(result.stdout) == {
        "file": str(good),
        "sentences": 2,
        "tokens": 4,
        "scheme": "iob2",
        "repaired_sentences": 0,
        "entities": {"ORG": 1, "PER": 1},
    }
    bad = tmp_path / "bad.txt"
    bad.write_text("EU B-ORG\nrejects\n")
    result = subprocess.run([str(cli), "check", f"file={bad}"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        f"nerlab-data: error: {bad}:2: expected at least 2 whitespace-separated columns "
        "(data.tag_column=-1), found 1 column 'rejects'"
    )
    result = subprocess.run([str(cli), "name=nope"], capture_output=True, text=True)
    assert result.returncode == 2 and "known data sets: conll2003" in result.stderr
