"""Errors raised for bad user input.

Every problem with an input file or string is raised as :class:`InputError`, whose message is a
single line ``<source>: <problem>``. The command-line interface prints that line and exits with a
non-zero status instead of showing a traceback; batch commands record it and go on with the next item.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """A user-supplied file or string cannot be used.

    Parameters
    ----------
    source
        The file path (or the input string, e.g. a SMILES) that is at fault.
    problem
        What is wrong with it, as a short phrase without a trailing full stop.
    """

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source = str(source)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.source}: {self.problem}")


def failure_reason(error: Exception) -> str:
    """One line: an :class:`InputError` as ``<file>: <problem>``, others as ``unexpected <type>: ...``."""
    if isinstance(error, InputError):
        return str(error)
    return f"unexpected {type(error).__name__}: {' '.join(str(error).split())}"
