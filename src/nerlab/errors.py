"""The project's own exceptions.

Every problem caused by a user's input (a file, a flag, a saved model) is raised as a
`NerlabError`. Command-line entry points catch it once and print `str(error)` as a single
line with a non-zero exit code, so a user's mistake never shows a traceback.
"""

from __future__ import annotations

from pathlib import Path


class NerlabError(Exception):
    """Base class of every error meant for a user."""


class DataFormatError(NerlabError):
    """A data file does not have the expected format.

    The message reads `FILE:LINE: expected EXPECTED, found FOUND`, the format compilers use,
    so editors can jump to the line.
    """

    def __init__(
        self, path: str | Path | None, line: int | None, expected: str, found: str
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.expected = expected
        self.found = found
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: expected {expected}, found {found}")


class TagSchemeError(NerlabError):
    """A tag sequence that is not well formed in the scheme it claims to use."""


class DownloadError(NerlabError):
    """A data set could not be fetched or did not match its checksum."""


class ConfigError(NerlabError):
    """An invalid configuration value, reported before any training starts."""


class ModelLoadError(NerlabError):
    """A saved model directory is missing a file, is corrupted, or is inconsistent."""
