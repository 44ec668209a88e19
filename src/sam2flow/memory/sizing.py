"""Adaptive sizing: start the next unit at a chunk size known to work.

For each (GPU name, total memory, memory cap, model, image size, objects) the largest
chunk that worked and the smallest that failed are kept in a small JSON file shared by all
jobs (atomic write under a file lock with a timeout). A new unit starts at the remembered
size instead of running out of memory again; after ``grow_after`` clean runs there, the
failure is taken as transient and the next unit tries the whole batch again.

The file is bookkeeping: the guard turns any failure to read, lock or write it into a
warning in the batch's record, never a lost batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock

from ..atomic import write_text
from .recovery import CHUNKED, WHOLE, Attempt

log = logging.getLogger(__name__)

#: Clean runs at the remembered size before the whole batch is tried again.
GROW_AFTER = 3
#: Seconds to wait for the sizing file's lock (a shared file system without flock hangs).
LOCK_TIMEOUT = 10


def sizing_key(
    gpu_name: str,
    total_bytes: int | None,
    model: str,
    image_size: int,
    objects: int,
    cap_bytes: int | None = None,
) -> str:
    """The conditions a remembered size is valid for."""
    return f"{gpu_name}|{total_bytes or 0}|cap {cap_bytes or 0}|{model}|{image_size}|{objects}"


class SizeMemory:
    """Remembered chunk sizes in ``path`` (created on first write).

    >>> mem = SizeMemory("/tmp/sizes.json")  # doctest: +SKIP
    >>> mem.start_size("key", 400)            # doctest: +SKIP
    """

    def __init__(self, path: str | Path, grow_after: int = GROW_AFTER) -> None:
        self.path = Path(path)
        self.grow_after = int(grow_after)
        self.lock = FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT)

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, OSError) as exc:
            log.warning("ignoring unreadable sizing memory %s: %s", self.path, exc)
            return {}

    def entry(self, key: str) -> dict:
        with self.lock:
            return dict(self._read().get(key, {}))

    def start_size(self, key: str, frames: int) -> int | None:
        """The chunk size to start a unit of ``frames`` with; ``None`` means whole."""
        e = self.entry(key)
        failed = e.get("smallest_failed")
        if not failed or frames < failed:
            return None
        ok = e.get("largest_ok")
        if not ok:
            return max(1, failed // 2)
        if e.get("successes", 0) >= self.grow_after:
            return None  # clean runs since the failure: try the whole batch again
        return ok

    def update(self, key: str, attempts: Iterable[Attempt]) -> None:
        """Fold one unit's attempts (whole and chunked levels only) into the memory.

        A unit counts as one success at its largest working chunk when nothing in it failed.
        """
        attempts = [a for a in attempts if a.level in (WHOLE, CHUNKED)]
        if not attempts:
            return
        ok = max((a.chunk_size for a in attempts if a.outcome == "ok"), default=None)
        failed = min((a.chunk_size for a in attempts if a.outcome != "ok"), default=None)
        with self.lock:
            data = self._read()
            e = data.get(key, {})
            if failed is not None:
                e["smallest_failed"] = min(failed, e.get("smallest_failed", failed))
                if e.get("largest_ok", 0) >= failed:
                    e.pop("largest_ok")
                e["successes"] = 0
            if ok is not None:
                if e.get("smallest_failed") and ok >= e["smallest_failed"]:
                    e.pop("smallest_failed")  # conditions changed: it fits now
                if ok > e.get("largest_ok", 0):
                    e["largest_ok"] = ok
                    e["successes"] = 0 if failed is not None else 1
                elif ok == e.get("largest_ok") and failed is None:
                    e["successes"] = e.get("successes", 0) + 1
            data[key] = e
            write_text(self.path, json.dumps(data, indent=1, sort_keys=True))
