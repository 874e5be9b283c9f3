"""The one type of bad input from a user, which every user-facing error derives from.

The CLI catches ``UserError`` alone: one line on stderr, exit code 2. Any other exception is a
bug and ends with its traceback and exit code 1. Library callers may catch ``UserError`` too,
and, where a subclass also derives from ``ValueError``, ``ValueError`` as before.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: the message names the thing (file, key, value) and the rule.

    ``option`` names the argument of the library call the bad value came in by (``"storage"``,
    ``"address"``, ...), or None; a front end names it its own way (the CLI as ``--storage``).
    The message itself never names a command-line flag.
    """

    def __init__(self, message: str, *, option: str | None = None):
        super().__init__(message)
        self.option = option


class ConfigError(UserError, ValueError):
    """A model family, preset, hyperparameter or training setting that breaks its declaration."""
