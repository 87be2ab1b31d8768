"""The CoNLL-2003-style tokenizer used for raw text, keeping character offsets."""

from __future__ import annotations

import re

# CoNLL-2003-like tokens: abbreviations (U.S.), numbers and dates (1996-08-22, 3.5),
# clitics split off ('s, n't), words with inner hyphens, then any other single symbol.
TOKEN_PATTERN = re.compile(
    r"(?:[^\W\d_]\.){2,}(?!\w)"
    r"|\d+(?:[.,:/-]\d+)*"
    r"|'s\b|n't\b"
    r"|\w+?(?=n't\b)"
    r"|\w+(?:-\w+)*"
    r"|[^\w\s]",
)


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Split ``text`` like CoNLL-2003 (``London.`` -> ``London``, ``.``); return
    ``(token, start, end)`` with character offsets into ``text`` (``end`` exclusive)."""
    return [(m.group(), m.start(), m.end()) for m in TOKEN_PATTERN.finditer(text)]
