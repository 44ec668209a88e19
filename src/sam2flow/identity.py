"""Identity of an input file (a video, a DeepLabCut file, a mask PNG): what says that frames
and masks made from a path still belong to the file that is there now.

A lab replaces a file in place (a re-export, a full copy over a truncated one, corrected
labels) and keeps its name; the modification time alone misses a copy made with ``cp -p``
and flags a mere ``touch``. The identity is the file's size and a digest of blocks sampled
across it (its first and last bytes among them; the whole of a file up to half a MiB),
about half a MiB read whatever the file's length, so that the workflow can afford it for
every file each time it plans a run. An edit that keeps the size and misses every sampled
block changes the modification time, which Snakemake sees for an input.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

#: Blocks read, evenly spaced from the file's first byte to its last, and their size.
BLOCKS = 8
BLOCK_BYTES = 64 * 1024


def file_identity(path: str | Path) -> str | None:
    """``"SIZE:DIGEST"`` of the file at ``path``, or ``None`` when there is no file (yet).

    The same content gives the same identity wherever the file lies and whatever its
    modification time; a change of length or of any sampled block gives another.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "v.mp4"
    >>> _ = p.write_bytes(b"frames"); file_identity(p)
    '6:663d329ff12b382a0a2f8583533ac386'
    >>> file_identity(p.with_name("none.mp4")) is None
    True
    """
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _identity(os.path.abspath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


@functools.lru_cache(maxsize=4096)
def _identity(path: str, size: int, mtime_ns: int, inode: int) -> str | None:
    """Cached by what ``stat`` says: a workflow asks for each video once per job it plans."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            if size <= BLOCKS * BLOCK_BYTES:
                digest.update(f.read())
            else:
                step = (size - BLOCK_BYTES) // (BLOCKS - 1)
                for k in range(BLOCKS):
                    f.seek(k * step)
                    digest.update(f.read(BLOCK_BYTES))
    except OSError:
        return None
    return f"{size}:{digest.hexdigest()}"
