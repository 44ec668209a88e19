"""The one exception type for errors a user can cause and fix (bad file, config, download)."""

from __future__ import annotations

from pathlib import Path

#: Exit status of a job that ran out of host memory (the batch needs a bigger ``mem_mb``):
#: the executor's retry then asks for attempt x mem_mb. User errors exit 1 (scripts) or 2
#: (command line).
HOST_OOM_EXIT = 3


class UserError(Exception):
    """What failed, on which file, and what to do about it: printed as one line.

    >>> str(UserError("cannot decode video", "a.mp4", "re-encode it with ffmpeg"))
    'cannot decode video: a.mp4: re-encode it with ffmpeg'
    """

    def __init__(self, what: str, path: str | Path | None = None, fix: str = "") -> None:
        self.what = what
        self.path = None if path is None else str(path)
        self.fix = fix
        parts = [what] + ([self.path] if self.path else []) + ([fix] if fix else [])
        super().__init__(": ".join(parts))


class BadValue(ValueError):
    """A value a user gave (an option, a point, a box) that cannot be used: one line, like
    a ``UserError``. Other ``ValueError``s are bugs and keep their traceback."""


def brief(exc: BaseException) -> str:
    """A library's error in one line, to quote in a ``UserError``: its last line, where
    HDF5 puts the conclusion after a back trace of 40 lines (pandas ends its parser errors
    with a newline).

    >>> brief(OSError("HDF5 error back trace\\n\\n  File ...\\n\\nUnable to open file 'a.h5'"))
    "Unable to open file 'a.h5'"
    >>> brief(ValueError("Expected 3 fields in line 5, saw 5\\n")), brief(KeyError())
    ('Expected 3 fields in line 5, saw 5', 'KeyError')
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def first_line(exc: BaseException, default: str | None = None) -> str:
    """An error's first line, for a record or a log: CUDA's out-of-memory message runs to
    several lines, and its first says what ran out (``default``, else the type's name, for
    an empty message).

    >>> first_line(RuntimeError("CUDA out of memory.\\nTried to allocate")), first_line(KeyError())
    ('CUDA out of memory.', 'KeyError')
    """
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else (type(exc).__name__ if default is None else default)


def or_exit(call, *args):
    """``call(*args)``, for code Snakemake runs while it reads the workflow: a ``UserError``
    there becomes one line and exit status 1, not Snakemake's traceback."""
    try:
        return call(*args)
    except UserError as exc:
        raise SystemExit(f"sam2flow: error: {exc}") from None
