"""Tag-scheme detection, conversion, repair and allowed transitions."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerlab.data import allowed_transitions, convert_tags, detect_scheme, repair_iob2, spans
from nerlab.data.tag_schemes import conlleval_spans, from_spans, split_tag, validate
from nerlab.errors import TagSchemeError

TYPES = ["PER", "LOC", "ORG"]


@st.composite
def chunked(draw, max_len: int = 12):
    """A sentence length and non-overlapping chunks, as (type, first, last)."""
    length = draw(st.integers(0, max_len))
    chunks, i = [], 0
    while i < length:
        if draw(st.booleans()):
            size = draw(st.integers(1, min(4, length - i)))
            chunks.append((draw(st.sampled_from(TYPES)), i, i + size - 1))
            i += size
        else:
            i += 1
    return length, chunks


@given(chunked())
@settings(max_examples=300, deadline=None)
def test_every_scheme_round_trips_through_every_other(case):
    length, chunks = case
    tags = {s: from_spans(length, chunks, s) for s in ("iob1", "iob2", "iobes")}
    for source, target in itertools.permutations(tags, 2):
        assert convert_tags(tags[source], target, source) == tags[target]
        assert spans(tags[source], source) == chunks
    assert convert_tags(tags["iob2"], "iobes") == tags["iobes"]  # source detected
    assert convert_tags(tags["iobes"], "bio") == tags["iob2"]


@given(
    st.lists(
        st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-PER", "S-LOC"]), max_size=10
    )
)
@settings(max_examples=300, deadline=None)
def test_repair_reads_like_conlleval_and_yields_well_formed_iob2(tags):
    fixed, changed = repair_iob2(tags)
    assert validate(fixed, "iob2") is None
    assert conlleval_spans(fixed) == conlleval_spans(tags)
    assert all(fixed[i] != tags[i] for i in changed)


def test_examples_of_conversion():
    assert convert_tags(["B-PER", "I-PER", "O", "B-LOC"], "iobes") == [
        "B-PER",
        "E-PER",
        "O",
        "S-LOC",
    ]
    assert convert_tags(["S-PER", "B-LOC", "I-LOC", "E-LOC"], "bio") == [
        "B-PER",
        "B-LOC",
        "I-LOC",
        "I-LOC",
    ]
    assert convert_tags(["I-PER", "B-PER", "O"], "bio", "iob1") == ["B-PER", "B-PER", "O"]
    assert convert_tags(["B-PER", "B-PER"], "iob1") == ["I-PER", "B-PER"]


@pytest.mark.parametrize(
    "tags",
    [
        ["O", "I-PER"],
        ["B-PER", "I-LOC"],
        ["B-PER", "E-LOC"],
        ["I-PER", "E-PER"],
        ["B-PER", "O"][:1] + ["S-PER", "E-PER"],
    ],
)
def test_ill_formed_input_raises_a_nerlab_error(tags):
    with pytest.raises(TagSchemeError, match="ill-formed"):
        convert_tags(tags, "iobes")


@pytest.mark.parametrize("tag", ["PER", "B_PER", "X-PER", "B-", "b-PER", ""])
def test_tags_that_fit_no_scheme(tag):
    with pytest.raises(TagSchemeError, match="fits no tag scheme"):
        split_tag(tag)


def test_detect_scheme():
    assert detect_scheme([["B-PER", "I-PER", "O"], ["B-LOC"]]) == "iob2"
    assert detect_scheme([["I-PER", "I-PER", "O"], ["I-LOC", "B-LOC"]]) == "iob1"
    assert detect_scheme([["B-PER", "E-PER", "S-LOC"]]) == "iobes"
    assert detect_scheme([["O", "O"]]) == "iob2"


@pytest.mark.parametrize("scheme", ["bio", "iobes", "iob1"])
def test_allowed_transitions_admit_exactly_the_well_formed_sequences(scheme):
    labels = ["O"] + [
        f"{p}-{t}" for t in ("PER", "LOC") for p in ("BIES" if scheme == "iobes" else "BI")
    ]
    allowed = set(allowed_transitions(scheme, labels))
    start, end = len(labels), len(labels) + 1
    for length in range(1, 4):
        for seq in itertools.product(range(len(labels)), repeat=length):
            path = [start, *seq, end]
            ok = all((a, b) in allowed for a, b in itertools.pairwise(path))
            well_formed = validate([labels[i] for i in seq], scheme) is None
            assert ok == well_formed, [labels[i] for i in seq]
