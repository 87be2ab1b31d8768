"""Tag schemes: parsing, detection, lossless conversion, repair, spans and allowed transitions.

Three schemes are understood:

- ``iob1`` (the original CoNLL-2003 release): ``I-X`` everywhere, ``B-X`` only to start a chunk
  right after another chunk of the same type.
- ``iob2`` (``bio``): every chunk starts with ``B-X``.
- ``iobes``: single-token chunks are ``S-X``, the last token of longer chunks ``E-X``.

Conversions go through chunks (spans), so they are lossless for well-formed input; ill-formed
input raises :class:`~nerlab.errors.TagSchemeError` unless it is first repaired with
:func:`repair_iob2`, which reads it the way conlleval does (an ``I-X`` that cannot continue a
chunk starts one). Everything here is pure Python.
"""

from __future__ import annotations

from collections.abc import Sequence

from nerlab.errors import TagSchemeError

SCHEMES = ("iob1", "iob2", "iobes")
#: Names users may type for a scheme, mapped to the canonical one.
SCHEME_ALIASES = {"bio": "iob2", "iob2": "iob2", "iob": "iob2", "iob1": "iob1", "iobes": "iobes"}
_PREFIXES = frozenset("BIES")

Span = tuple[str, int, int]  # (type, first token, last token), inclusive like seqeval


def canonical_scheme(name: str) -> str:
    """Return the canonical scheme name for ``name`` (``bio`` -> ``iob2``)."""
    try:
        return SCHEME_ALIASES[name.lower()]
    except KeyError:
        raise TagSchemeError(
            f"unknown tag scheme {name!r}; expected one of {', '.join(sorted(SCHEME_ALIASES))}"
        ) from None


def split_tag(tag: str) -> tuple[str, str | None]:
    """Split ``B-PER`` into ``("B", "PER")`` and ``O`` into ``("O", None)``.

    Raises TagSchemeError for a tag that fits no scheme (``PER``, ``B_PER``, ``X-PER``, ``B-``).
    """
    if tag == "O":
        return "O", None
    if len(tag) > 2 and tag[1] == "-" and tag[0] in _PREFIXES:
        return tag[0], tag[2:]
    raise TagSchemeError(f"tag {tag!r} fits no tag scheme (expected O or B-/I-/E-/S-TYPE)")


def is_valid_tag(tag: str) -> bool:
    return tag == "O" or (len(tag) > 2 and tag[1] == "-" and tag[0] in _PREFIXES)


def _first_ill_formed_iob2(tags: Sequence[str]) -> int | None:
    """Index of the first ``I-X`` that does not continue a chunk of type X, or None."""
    prev_type: str | None = None
    for i, tag in enumerate(tags):
        prefix, type_ = split_tag(tag)
        if prefix == "I" and prev_type != type_:
            return i
        if prefix in "ES":
            return i
        prev_type = type_
    return None


def _first_ill_formed_iobes(tags: Sequence[str]) -> int | None:
    """Index of the first tag that breaks IOBES (``E``/``I`` not inside, ``B``/``I`` not closed)."""
    open_type: str | None = None
    for i, tag in enumerate(tags):
        prefix, type_ = split_tag(tag)
        inside = open_type is not None
        if prefix in "IE":
            if not inside or open_type != type_:
                return i
            open_type = type_ if prefix == "I" else None
        elif inside:  # O, B or S while a chunk is still open
            return i - 1
        elif prefix == "B":
            open_type = type_
    return len(tags) - 1 if open_type is not None else None


def detect_scheme(sequences: Sequence[Sequence[str]]) -> str:
    """Guess the scheme of a whole corpus: ``iobes``, ``iob2`` or ``iob1``.

    ``E-``/``S-`` prefixes mean IOBES. Otherwise, if some ``I-X`` opens a chunk and every ``B-X``
    directly follows a chunk of the same type (the only place IOB1 uses ``B``), the corpus is
    IOB1; in every other case it is IOB2 (possibly with ill-formed continuations, which
    :func:`validate` reports).
    """
    has_es = False
    i_opens = False
    b_after_other = False
    for tags in sequences:
        prev_type: str | None = None
        for tag in tags:
            prefix, type_ = split_tag(tag)
            if prefix in "ES":
                has_es = True
            elif prefix == "I" and prev_type != type_:
                i_opens = True
            elif prefix == "B" and prev_type != type_:
                b_after_other = True
            prev_type = type_
    if has_es:
        return "iobes"
    if i_opens and not b_after_other:
        return "iob1"
    return "iob2"


def validate(tags: Sequence[str], scheme: str) -> int | None:
    """Index of the first tag that breaks ``scheme``, or None when the sequence is well formed."""
    scheme = canonical_scheme(scheme)
    if scheme == "iobes":
        return _first_ill_formed_iobes(tags)
    if scheme == "iob2":
        return _first_ill_formed_iob2(tags)
    prev_type: str | None = None  # iob1: B-X only right after a chunk of type X
    for i, tag in enumerate(tags):
        prefix, type_ = split_tag(tag)
        if prefix in "ES" or (prefix == "B" and prev_type != type_):
            return i
        prev_type = type_
    return None


def spans(tags: Sequence[str], scheme: str = "iob2") -> list[Span]:
    """Chunks of a well-formed sequence as ``(type, first, last)`` with inclusive ends.

    Raises TagSchemeError naming the position when the sequence is ill formed in ``scheme``.
    """
    scheme = canonical_scheme(scheme)
    bad = validate(tags, scheme)
    if bad is not None:
        raise TagSchemeError(
            f"ill-formed {scheme.upper()} sequence at position {bad + 1}: "
            f"{' '.join(tags[max(0, bad - 2) : bad + 2])!s}"
        )
    return conlleval_spans(tags)


def from_spans(length: int, chunks: Sequence[Span], scheme: str) -> list[str]:
    """Write chunks back as tags of ``scheme`` (the inverse of :func:`spans`)."""
    scheme = canonical_scheme(scheme)
    tags = ["O"] * length
    prev_end, prev_type = -2, None
    for type_, first, last in chunks:
        for i in range(first, last + 1):
            tags[i] = f"I-{type_}"
        if scheme == "iob2":
            tags[first] = f"B-{type_}"
        elif scheme == "iob1":
            if prev_end == first - 1 and prev_type == type_:
                tags[first] = f"B-{type_}"
        else:
            if first == last:
                tags[first] = f"S-{type_}"
            else:
                tags[first] = f"B-{type_}"
                tags[last] = f"E-{type_}"
        prev_end, prev_type = last, type_
    return tags


def convert_tags(tags: Sequence[str], target: str, source: str | None = None) -> list[str]:
    """Convert one sentence's tags to ``target`` (``iobes``, ``bio``/``iob2`` or ``iob1``).

    ``source`` defaults to IOBES when an ``E-``/``S-`` tag is present and IOB2 otherwise.
    Raises TagSchemeError on ill-formed input (repair it first with :func:`repair_iob2`).
    """
    target = canonical_scheme(target)
    if source is None:
        source = "iobes" if any(t[:2] in ("E-", "S-") for t in tags) else "iob2"
    source = canonical_scheme(source)
    if source == target:
        bad = validate(tags, source)
        if bad is None:
            return list(tags)
    return from_spans(len(tags), spans(tags, source), target)


def repair_iob2(tags: Sequence[str]) -> tuple[list[str], list[int]]:
    """Read tags as conlleval does and return them as well-formed IOB2.

    An ``I-X`` that cannot continue a chunk of type X starts one (becomes ``B-X``); ``E-``/``S-``
    tags are read as IOBES. Returns the repaired tags and the positions that changed.
    """
    out: list[str] = []
    changed: list[int] = []
    chunks = conlleval_spans(tags)
    fixed = from_spans(len(tags), chunks, "iob2")
    for i, (old, new) in enumerate(zip(tags, fixed, strict=True)):
        if old != new:
            changed.append(i)
        out.append(new)
    return out, changed


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in "ES":
        return True
    if prev_tag in "BI" and tag in "BSO":
        return True
    return prev_tag not in "O." and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in "BS":
        return True
    if prev_tag in "ESO" and tag in "EI":
        return True
    return tag not in "O." and prev_type != type_


def conlleval_spans(tags: Sequence[str]) -> list[Span]:
    """Chunks exactly as conlleval (and seqeval's default mode) reads them, ill-formed or not.

    This is the reading that entity-level scores use, so the project's metric equals seqeval's.
    """
    chunks: list[Span] = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, chunk in enumerate([*tags, "O"]):
        tag = chunk[0]
        type_ = chunk[1:].split("-", maxsplit=1)[-1] or "_"
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def allowed_transitions(scheme: str, labels: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of label indices between which a transition is allowed.

    Index ``len(labels)`` stands for START and ``len(labels) + 1`` for END, as in AllenNLP.
    Decoding restricted to these pairs always yields well-formed chunks in ``scheme``.
    """
    scheme = canonical_scheme(scheme)
    n = len(labels)
    parsed: list[tuple[str, str | None]] = [split_tag(t) for t in labels]
    parsed += [("START", None), ("END", None)]
    allowed = []
    for i, (p_from, t_from) in enumerate(parsed):
        if p_from == "END":
            continue
        for j, (p_to, t_to) in enumerate(parsed):
            if p_to == "START":
                continue
            if _is_allowed(scheme, p_from, t_from, p_to, t_to):
                allowed.append((i, j))
    assert all(0 <= i <= n + 1 and 0 <= j <= n + 1 for i, j in allowed)
    return allowed


def _is_allowed(scheme: str, p_from: str, t_from, p_to: str, t_to) -> bool:
    if scheme == "iobes":
        if p_from in ("START", "O", "E", "S"):
            return p_to in ("END", "O", "B", "S")
        # inside a chunk (B or I): only I or E of the same type may follow
        return p_to in ("I", "E") and t_from == t_to
    if scheme == "iob2":
        if p_to in ("END", "O", "B"):
            return True
        if p_to == "I":
            return p_from in ("B", "I") and t_from == t_to
        return False  # E/S do not exist in IOB2
    # iob1: B-X only right after X; I-X may follow anything
    if p_to in ("END", "O", "I"):
        return True
    if p_to == "B":
        return p_from in ("B", "I") and t_from == t_to
    return False


def ids_to_iob2(ids: Sequence[int], tags: Sequence[str]) -> list[str]:
    """Tag ids of a model's scheme (``tags`` in id order) to IOB2 strings, read the way
    conlleval reads them, so an ill-formed prediction scores as it would there."""
    strings = [tags[i] for i in ids]
    return from_spans(len(strings), conlleval_spans(strings), "iob2")


def span_cases(
    tags: Sequence[str], label: str, first: int, last: int, length: int
) -> list[dict[int, set[int]]]:
    """The tag paths that read (as :func:`conlleval_spans` reads them) as exactly the chunk
    ``label`` over tokens ``first..last`` of a ``length``-token sentence, as disjoint cases.

    ``tags`` are a model's tag strings in id order (any of BIO, IOBES). Each case maps positions
    to the tag ids allowed there (positions not named are free), so the probability of the span
    is the sum over cases of the probability that every named position takes an allowed tag:
    a constrained forward pass each. Conlleval starts a chunk at ``B``/``S``, or at ``I``/``E``
    after anything but a ``B``/``I`` of the same type; it continues one with ``I``/``E`` after
    ``B``/``I`` of the same type; a chunk ends at ``E``/``S``, or before anything but ``I``/``E``
    of its type. Cases whose tags the model does not have are left out.
    """
    index = {t: i for i, t in enumerate(tags)}

    def ids(*prefixes: str) -> set[int]:
        return {index[f"{p}-{label}"] for p in prefixes if f"{p}-{label}" in index}

    every = set(range(len(tags)))
    continues_from = ids("B", "I")  # a chunk of `label` can go on after these
    continuing = ids("I", "E")  # ... with these
    no_chunk_before = every - continues_from if first > 0 else None
    no_chunk_after = every - continuing if last + 1 < length else None

    # (the tag's prefix at first, must the previous tag not run into it?) and likewise at last
    if first == last:
        options = [("S", False, False), ("B", False, True), ("E", True, False), ("I", True, True)]
        cases = [({first: ids(p)}, before, after) for p, before, after in options]
    else:
        cases = []
        for start, before in (("B", False), ("I", True)):
            for end, after in (("E", False), ("I", True)):
                case = {first: ids(start), last: ids(end)}
                case.update({t: ids("I") for t in range(first + 1, last)})
                cases.append((case, before, after))
    out = []
    for case, before, after in cases:
        if before and no_chunk_before is not None:
            case[first - 1] = no_chunk_before
        if after and no_chunk_after is not None:
            case[last + 1] = no_chunk_after
        if all(case.values()):  # every named position has a tag the model knows
            out.append(case)
    return out
