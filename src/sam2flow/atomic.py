"""Atomic writes: a later step never reads a half-written file.

Every file is written to a temporary name in the same folder and renamed into place,
so a crash or a full disk leaves either the old file or no file, never a truncated one.
This module is stdlib-only so that both the memory guard and the pipeline steps use it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError

#: Write failures a user fixes (space, permissions), with what to do about each.
_FIXES = {
    errno.ENOSPC: "free disk space (or point results elsewhere) and run again",
    errno.EDQUOT: "free quota (or point results elsewhere) and run again",
    errno.EACCES: "make the results folder writable and run again",
    errno.EPERM: "make the results folder writable and run again",
    errno.EROFS: "the file system is read-only: point results elsewhere",
    errno.EFBIG: "the file is over the size limit of this shell or job (ulimit -f): raise it "
    "or point results elsewhere",
    errno.EEXIST: "a file stands where a folder goes: move it, or give another folder",
    errno.ENOTDIR: "a file stands where a folder goes: move it, or give another folder",
}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def user_write_error(exc: OSError, path: str | Path) -> UserError | None:
    """A ``UserError`` for a write failure a user can fix (full disk, permissions)."""
    fix = _FIXES.get(exc.errno)
    if fix is None:
        return None
    return UserError(f"cannot write ({exc.strerror})", path, fix)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    >>> with atomic_path("out.csv") as tmp:   # doctest: +SKIP
    ...     df.to_csv(tmp)
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent
        )
    except OSError as exc:
        raise (user_write_error(exc, path) or exc) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from the lab
        os.replace(tmp_path, path)
    except OSError as exc:
        raise (user_write_error(exc, path) or exc) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def check_writable(folder: str | Path) -> None:
    """Make ``folder`` and write (then remove) a file in it: a job that can't save its
    results fails before hours of work, not after."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".sam2flow-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise (user_write_error(exc, folder) or exc) from exc


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))
