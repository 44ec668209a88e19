"""Adaptive sizing: after a unit fails whole, go straight to a chunk size known to work.

For each (GPU name, total memory, memory cap, model, image size, precision, frame size,
objects) the largest chunk that worked and the smallest that failed are kept in a small
JSON file shared by all jobs (atomic write under a file lock with a timeout). Every unit is
still tried whole first, so the file never changes the masks of a batch that fits: it only
saves the halving steps of one that does not. It learns only from sizes the ladder chose
for memory (not from remainders, resumed or bisected pieces), and after ``grow_after``
units in a row ran whole without an OOM, the entry is forgotten.

The file is bookkeeping: the guard turns any failure to read, lock or write it into a
warning in the batch's record, never a lost batch; a damaged file is repaired.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock

from ..atomic import write_text
from ..vocabulary import DEFAULT_GROW_AFTER
from .recovery import CHUNKED, WHOLE, Attempt

log = logging.getLogger(__name__)

#: Units in a row that run whole without an OOM before a remembered failure is forgotten.
#: Seconds to wait for the sizing file's lock (a shared file system without flock hangs).
LOCK_TIMEOUT = 10
_FIELDS = ("largest_ok", "smallest_failed", "successes")


def sizing_key(
    gpu_name: str,
    total_bytes: int | None,
    model: str,
    image_size: int,
    objects: int,
    cap_bytes: int | None = None,
    precision: str = "fp32",
    frame_size: tuple[int, int] | None = None,
) -> str:
    """The conditions a remembered size is valid for."""
    height, width = frame_size or (0, 0)
    return (
        f"{gpu_name}|{total_bytes or 0}|cap {cap_bytes or 0}|{model}|{image_size}|{objects}"
        f"|{precision}|{height}x{width}"
    )


class SizeMemory:
    """Remembered chunk sizes in ``path`` (created on first write). ``warnings``: what was
    wrong with the file as read (the next write repairs it).

    >>> mem = SizeMemory("/tmp/sizes.json")  # doctest: +SKIP
    >>> mem.size_after_whole_fails("key", 400)  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, grow_after: int = DEFAULT_GROW_AFTER) -> None:
        self.path = Path(path)
        self.grow_after = int(grow_after)
        self.lock = FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT)
        self.warnings: list[str] = []

    def _read(self) -> dict:
        """The file's entries; what cannot be read is left out, with a warning."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return self._damaged(f"not JSON ({exc}); it is written anew", {})
        if not isinstance(data, dict):
            return self._damaged("not a JSON object; it is written anew", {})
        good = {k: e for k, e in data.items() if _valid_entry(e)}
        if len(good) < len(data):
            bad = sorted(set(data) - set(good))
            return self._damaged(f"entries {bad} are badly shaped; they are dropped", good)
        return data

    def _damaged(self, what: str, kept: dict) -> dict:
        """Warn once per damage: a unit reads the file before and after it runs."""
        text = f"the sizing file {self.path} was damaged: {what}"
        if text not in self.warnings:
            log.warning(text)
            self.warnings.append(text)
        return kept

    def entry(self, key: str) -> dict:
        with self.lock:
            return dict(self._read().get(key, {}))

    def size_after_whole_fails(self, key: str, frames: int) -> int | None:
        """The chunk size to try after a unit of ``frames`` failed whole: the largest that
        worked here before, if it is shorter; ``None``: halve as usual."""
        ok = self.entry(key).get("largest_ok")
        return ok if ok and ok < frames else None

    def update(self, key: str, attempts: Iterable[Attempt]) -> None:
        """Fold one unit's attempts into the memory: sizes from the whole and chunked
        levels that the ladder chose for memory; a unit without an OOM is one clean run."""
        attempts = list(attempts)
        sized = [a for a in attempts if a.level in (WHOLE, CHUNKED) and a.sized_for_memory]
        ok = max((a.chunk_size for a in sized if a.outcome == "ok"), default=None)
        failed = min((a.chunk_size for a in sized if a.outcome != "ok"), default=None)
        clean = all(a.outcome == "ok" for a in attempts)
        with self.lock:
            data = self._read()
            if clean and key not in data:  # nothing to remember; a damaged file is repaired
                if self.warnings:
                    write_text(self.path, json.dumps(data, indent=1, sort_keys=True))
                return
            e = data.get(key, {})
            if failed is not None:
                e["smallest_failed"] = min(failed, e.get("smallest_failed", failed))
                if e.get("largest_ok", 0) >= failed:
                    e.pop("largest_ok")
            if ok is not None:
                if e.get("smallest_failed") and ok >= e["smallest_failed"]:
                    e.pop("smallest_failed")  # conditions changed: it fits now
                e["largest_ok"] = max(ok, e.get("largest_ok", 0))
            e["successes"] = e.get("successes", 0) + 1 if clean else 0
            if e["successes"] >= self.grow_after or not e.keys() - {"successes"}:
                data.pop(key, None)  # clean runs since the failure: it was transient
            else:
                data[key] = e
            write_text(self.path, json.dumps(data, indent=1, sort_keys=True))


def _valid_entry(entry) -> bool:
    """A dict of the known fields, each a whole number (a size >= 1)."""
    return isinstance(entry, dict) and all(
        k in _FIELDS and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in entry.items()
    )
