"""Graduated recovery: keep a unit of work alive through out-of-memory errors.

A unit spans positions ``first..last``. It is tried whole. Each chunk hands a *carry* to
the next (for SAM 2, the last mask) so chunked work continues where the previous chunk
ended. After an OOM:

- Frames already finished are kept. A work function that says how far it got
  (``progress``) is continued from its last finished position, with the same carry as a
  chunk seam, in a fresh attempt: nothing is done twice. One that does not is split in
  halves down to ``min_chunk`` frames (chunk length is only a cap: a flat-memory model
  needs no smaller chunks, but memory that grows with the chunk does).
- Where the error's own figures say the memory was there (reserved by the allocator but
  unallocated), the same attempt is tried once more after the cache is emptied.
- Then the levels that lower the peak: CPU offload of the state, then (only if allowed)
  the CPU.
- At the last level, what fails is skipped up to the next *anchor*, a position where work
  can start again without a carry (a frame with its own prompt, the start of the
  backward range), and the work starts again there, from the first level. With
  ``progress`` that is exactly the frame that failed; otherwise the failed piece is
  bisected at anchors (pieces under the floor isolate what cannot run, they do not save
  memory) and the smallest failing piece is skipped.

A unit meets at most ``failure_cap`` OOMs (about 3 x log2 of its frames); the rest of it
is then skipped. Each skipped range is recorded with its reason.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..errors import first_line
from ..vocabulary import CHUNKED, CPU, DEFAULT_MIN_CHUNK, OFFLOAD, WHOLE
from . import devices
from .monitoring import Monitor
from .oom import HostOutOfMemory, is_oom_error, maybe_inject_oom, memory_was_there, oom_kind

log = logging.getLogger(__name__)


# Levels in the order they are tried; "whole" is the unit in one piece.


@dataclass(frozen=True)
class Plan:
    """How one attempt must run: handed to the work function."""

    level: str
    device: torch.device
    offload: bool
    first_frame: int
    last_frame: int

    @property
    def frames(self) -> int:
        return self.last_frame - self.first_frame + 1


@dataclass
class Attempt:
    """One try over ``first_frame..last_frame`` and how it ended."""

    level: str
    chunk_size: int
    first_frame: int
    last_frame: int
    outcome: str  # ok | oom
    error: str | None
    seconds: float
    peak_allocated_bytes: int | None
    peak_reserved_bytes: int | None
    nvml_used_bytes: int | None
    frames_done: int = 0  # positions finished (and kept) before the attempt ended
    memory_was_there: bool = False  # the OOM's figures: reserved but unallocated >= asked
    sized_for_memory: bool = True  # its length is the ladder's chunk, not a rest or a piece


@dataclass
class UnitRecord:
    """What happened to a unit: JSON-ready through ``to_dict``."""

    status: str  # ok | recovered | skipped
    frames_total: int
    frames_ok: int
    frames_skipped: int
    device: str
    gpu_name: str
    memory_cap_bytes: int | None
    status_level: str
    peak_allocated_bytes: int | None
    final_chunk_size: int
    attempts: list[Attempt] = field(default_factory=list)
    skipped_ranges: list[tuple[int, int]] = field(default_factory=list)
    skip_reason: str | None = None  # the first range's, for a one-line summary
    skip_reasons: list[str] = field(default_factory=list)  # one per skipped range
    snapshots: list[dict] = field(default_factory=list)
    sizing: dict | None = None  # where the starting chunk size came from (guard)
    failure_cap: int | None = None  # OOMs this unit could meet before the rest was skipped

    @classmethod
    def not_run(
        cls, frames_total: int, device: torch.device, memory_cap_bytes: int | None = None
    ) -> UnitRecord:
        """The record of a unit that had nothing to run (no prompt): same fields as any."""
        return cls(
            status="ok",
            frames_total=frames_total,
            frames_ok=0,
            frames_skipped=0,
            device=str(device),
            gpu_name=devices.device_name(device),
            memory_cap_bytes=memory_cap_bytes,
            status_level="healthy",
            peak_allocated_bytes=None,
            final_chunk_size=0,
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["skipped_ranges"] = [list(r) for r in self.skipped_ranges]
        return data


def next_chunk_size(failed_size: int, min_chunk: int = DEFAULT_MIN_CHUNK) -> int | None:
    """The size to retry a failed chunk with, or ``None`` when it is already at the floor.

    >>> [next_chunk_size(s) for s in (400, 200, 100, 50, 25)]
    [200, 100, 50, 25, None]
    >>> next_chunk_size(60), next_chunk_size(30), next_chunk_size(10)
    (30, 25, None)
    """
    if failed_size <= min_chunk:
        return None
    return max(min_chunk, failed_size // 2)


def chunk_size_at(chunk: int, remaining: int, floor: int) -> int:
    """The size of the next chunk when ``remaining`` frames are left: ``chunk``, unless
    that would leave a last chunk under ``floor``; then the remaining frames are spread
    evenly over as many chunks as keep every one at ``floor`` or more.

    ``floor`` is the unit's: ``min(min_chunk, unit length)``, so no chunk is ever a runt.

    >>> chunk_size_at(25, 51, 25), chunk_size_at(25, 25, 25)   # 51 -> 26 + 25, not 25+25+1
    (26, 25)
    >>> chunk_size_at(50, 110, 25), chunk_size_at(50, 130, 25)  # 37+37+36; 50+50+30
    (37, 50)
    """
    if remaining <= chunk:
        return remaining
    parts = math.ceil(remaining / chunk)
    if remaining - (parts - 1) * chunk >= floor:
        return chunk
    parts = max(1, min(parts, remaining // floor))
    return math.ceil(remaining / parts)


def failure_cap(frames: int, levels: int) -> int:
    """How many OOMs a unit of ``frames`` may meet before the rest of it is skipped: about
    3 x log2 of its frames (a bisection per failing region, a few regions), and never fewer
    than two rounds of its ``levels``. Without it, a batch prompted on every frame that
    fails everywhere took thousands of attempts.

    >>> failure_cap(60, 2), failure_cap(400, 3), failure_cap(1, 2)
    (18, 26, 6)
    """
    return max(2 * levels + 2, math.ceil(3 * math.log2(max(frames, 2))))


def levels_for(
    device: torch.device, force_cpu_offload: bool, allow_cpu_fallback: bool
) -> list[str]:
    """The levels to go through after the chunk floor, in order."""
    levels = [OFFLOAD] if force_cpu_offload else [CHUNKED, OFFLOAD]
    if allow_cpu_fallback and device.type != "cpu":
        levels.append(CPU)
    return levels


Work = Callable[[Plan, Any], Any]
#: ``progress(plan)``: the last position of ``plan`` the work finished and the carry that
#: continues from it (``plan.first_frame - 1`` when none), or ``None`` when the work did not
#: start on ``plan`` (the attempt failed before it).
Progress = Callable[[Plan], "tuple[int, Any] | None"]


def run_with_recovery(
    work: Work,
    first: int,
    last: int,
    *,
    device: torch.device,
    min_chunk: int = DEFAULT_MIN_CHUNK,
    start_chunk: int | None = None,
    force_cpu_offload: bool = False,
    allow_cpu_fallback: bool = False,
    carry: Any = None,
    anchors: Collection[int] = (),
    monitor: Monitor | None = None,
    memory_cap_bytes: int | None = None,
    frames_of: Callable[[int, int], list[int]] | None = None,
    progress: Progress | None = None,
    after_whole: int | None = None,
    attempts: list[Attempt] | None = None,
) -> UnitRecord:
    """Run ``work(plan, carry) -> carry`` over ``first..last`` with graduated recovery.

    ``work`` must either finish all positions of ``plan`` or raise. OOM errors are retried
    as described in the module docstring; any other error propagates unchanged. After a
    skipped range, ``work`` gets ``carry=None`` and a plan starting on an anchor.
    ``frames_of(a, b)``: the video frames of positions ``a..b`` (for messages and the
    injection hook; positions are frames when not given). ``progress``: see ``Progress``.
    ``after_whole``: the chunk to try once the whole unit failed (the sizing file's), in
    place of halving. ``attempts``: a list the attempts are appended to as they end, so
    that a caller still has them when an error that is not an OOM ends the unit.

    >>> rec = run_with_recovery(lambda plan, carry: None, 0, 59, device=torch.device("cpu"))
    >>> rec.status, rec.frames_ok
    ('ok', 60)
    """
    if min_chunk < 1:
        raise ValueError(f"min_chunk must be >= 1, got {min_chunk!r}")
    if last < first:
        raise ValueError(f"empty unit: first={first}, last={last}")
    total = last - first + 1
    frames_of = frames_of or (lambda a, b: list(range(a, b + 1)))
    restarts = sorted({a for a in anchors if first < a <= last})
    monitor = monitor or Monitor(device, enabled=False)
    ladder = levels_for(device, force_cpu_offload, allow_cpu_fallback)
    cap = failure_cap(total, len(ladder))
    attempts = [] if attempts is None else attempts
    floor = min(min_chunk, total)
    chunk = min(start_chunk or total, total)
    rung = 0  # index into the ladder; CHUNKED is shown as WHOLE while a chunk spans the unit
    narrowed = None  # while bisecting at the last level: the piece up to an anchor
    retried = None  # (pos, size, rung) of the one same-size retry after emptying the cache
    skips: list[tuple[int, int, str]] = []
    pos = first

    def skip(at: int, upto: int, why: str) -> int:
        """Skip ``at..upto`` and what follows it up to the next anchor; return where work
        starts again."""
        restart = next((a for a in restarts if a > upto), last + 1)
        skipped = [(at, upto, why)]
        if restart > upto + 1:  # no mask to continue from until the next anchor
            skipped.append((upto + 1, restart - 1, unreachable(frames_of(at, upto))))
        for lo, hi, reason in skipped:
            log.warning("skipping %s: %s", describe_frames(frames_of(lo, hi)), reason)
        skips.extend(skipped)
        return restart

    while pos <= last:
        failures = sum(a.outcome != "ok" for a in attempts)
        if failures >= cap:
            why = (
                f"gave up after {failures} out-of-memory errors (at most {cap} for "
                f"{total} frames); the last: {attempts[-1].error}"
            )
            log.warning("skipping %s: %s", describe_frames(frames_of(pos, last)), why)
            skips.append((pos, last, why))
            break
        level = ladder[rung]
        if narrowed is not None:
            size = narrowed
        else:
            size = chunk_size_at(chunk, last - pos + 1, floor)
        shown = WHOLE if (level == CHUNKED and pos == first and size == total) else level
        run_device = torch.device("cpu") if level == CPU else device
        plan = Plan(shown, run_device, level in (OFFLOAD, CPU), pos, pos + size - 1)
        frames = frames_of(plan.first_frame, plan.last_frame)
        attempt, carry_out, failed = _attempt(
            work, plan, carry, monitor, frames, device, per_frame_hook=progress is not None
        )
        attempt.sized_for_memory = narrowed is None and size in (chunk, total)
        attempts.append(attempt)
        if failed:
            # Out of the except block: the failed attempt's tensors are unreachable now.
            devices.clear_device_cache(device)
            reached = progress(plan) if progress is not None else None
            if reached is not None and reached[0] >= pos:
                attempt.frames_done = reached[0] - pos + 1
        log.info(
            "%s (%d, level %s): %s%s%s",
            describe_frames(frames),
            size,
            shown,
            attempt.outcome,
            f" ({attempt.error})" if attempt.error else "",
            f", {attempt.frames_done} frames kept" if failed and attempt.frames_done else "",
        )
        if not failed:
            carry = carry_out
            pos += size
            narrowed = None
            continue
        if attempt.frames_done:  # continue after them, from a fresh state: never redone
            pos, carry = pos + attempt.frames_done, reached[1]
            narrowed = None
            continue
        if attempt.memory_was_there and retried != (pos, size, rung):
            retried = (pos, size, rung)  # fragmentation, not a lack of memory: once more
            continue
        smaller = next_chunk_size(size, min_chunk)
        if shown == WHOLE and after_whole and after_whole < size:
            smaller = max(after_whole, floor)
        if reached is not None:  # failed on its first position: a shorter chunk is no help
            smaller = None
        if (
            narrowed is None
            and smaller is not None
            and (chunk_size_at(smaller, last - pos + 1, floor) < size)
        ):
            chunk = smaller
        elif narrowed is None and rung + 1 < len(ladder):
            rung += 1
            chunk = size
        elif reached is not None:  # its first position fails at every level
            why = f"out of memory at every level: {attempt.error}"
            pos, carry, rung, narrowed = skip(pos, pos, why), None, 0, None
        elif inside := [a for a in restarts if pos < a < pos + size]:
            # Bisect: up to the anchor nearest the middle of what failed.
            narrowed = min(inside, key=lambda a: abs(2 * a - 2 * pos - size)) - pos
        else:
            why = f"out of memory at every level down to {size} frames: {attempt.error}"
            pos, carry, rung, narrowed = skip(pos, pos + size - 1, why), None, 0, None
    frames_skipped = sum(hi - lo + 1 for lo, hi, _ in skips)
    status = (
        "skipped" if skips else ("recovered" if any(a.outcome != "ok" for a in attempts) else "ok")
    )
    peaks = [a.peak_allocated_bytes for a in attempts if a.peak_allocated_bytes is not None]
    return UnitRecord(
        status=status,
        frames_total=total,
        frames_ok=total - frames_skipped,
        frames_skipped=frames_skipped,
        device=str(device),
        gpu_name=devices.device_name(device),
        memory_cap_bytes=memory_cap_bytes,
        status_level=monitor.worst_level(),
        peak_allocated_bytes=max(peaks) if peaks else None,
        final_chunk_size=attempts[-1].chunk_size,
        attempts=attempts,
        skipped_ranges=[(lo, hi) for lo, hi, _ in skips],
        skip_reason=skips[0][2] if skips else None,
        skip_reasons=[why for _, _, why in skips],
        failure_cap=cap,
    )


def unreachable(failed: list[int]) -> str:
    """Why frames right after a skipped range are skipped too."""
    return (
        f"no mask to continue from: {describe_frames(failed)} could not be segmented, "
        "and no frame with its own prompt comes before these"
    )


def frame_ranges(frames: Iterable[int]) -> list[list[int]]:
    """Frames as sorted ``[first, last]`` runs: ``[3, 1, 2, 7]`` -> ``[[1, 3], [7, 7]]``."""
    ranges: list[list[int]] = []
    for f in sorted(frames):
        if ranges and f == ranges[-1][1] + 1:
            ranges[-1][1] = f
        else:
            ranges.append([f, f])
    return ranges


def describe_frames(frames: Iterable[int]) -> str:
    """``frames 0-9, 20-29``: for messages."""
    return "frames " + ", ".join(f"{a}-{b}" for a, b in frame_ranges(frames))


def _attempt(
    work: Work,
    plan: Plan,
    carry: Any,
    monitor: Monitor,
    frames: list[int],
    unit_device: torch.device,
    per_frame_hook: bool = False,
) -> tuple[Attempt, Any, bool]:
    """Run one attempt; return its record, the new carry, and whether it ran out of memory.

    The exception is turned into text inside the ``except`` block and dropped when the
    block ends, so its traceback (and the tensors its frames hold) die before any retry.
    A host OOM is recovered from only where the unit's own device is the CPU: during the
    CPU fallback of a GPU job it means the job needs more memory (exit 3), not a skip.
    ``per_frame_hook``: the work injects ``frames=`` OOMs itself, at the frame.
    """
    devices.reset_peak(plan.device)
    monitor.snapshot(f"start {plan.first_frame}-{plan.last_frame}")
    started = time.perf_counter()
    error = None
    was_there = False
    carry_out = None
    try:
        maybe_inject_oom(frames, at_frames=not per_frame_hook)
        carry_out = work(plan, carry)
        devices.synchronize(plan.device)
    except Exception as exc:
        if oom_kind(exc) == "host" and not is_oom_error(exc, unit_device):
            raise HostOutOfMemory(
                f"host memory ran out while segmenting on {plan.device} "
                f"({first_line(exc)}): "
                "give the job more memory (resources mem_mb)"
            ) from exc
        if not is_oom_error(exc, unit_device):
            raise
        error = first_line(exc)
        was_there = memory_was_there(str(exc))
    seconds = time.perf_counter() - started
    snap = monitor.snapshot(f"end {plan.first_frame}-{plan.last_frame}")
    peak_alloc = peak_res = None
    if plan.device.type == "cuda" and torch.cuda.is_initialized():
        peak_alloc = torch.cuda.max_memory_allocated(plan.device)
        peak_res = torch.cuda.max_memory_reserved(plan.device)
    attempt = Attempt(
        level=plan.level,
        chunk_size=plan.frames,
        first_frame=plan.first_frame,
        last_frame=plan.last_frame,
        outcome="oom" if error else "ok",
        error=error,
        seconds=round(seconds, 4),
        peak_allocated_bytes=peak_alloc,
        peak_reserved_bytes=peak_res,
        nvml_used_bytes=snap.nvml_used if snap else None,
        frames_done=0 if error else plan.frames,
        memory_was_there=was_there,
    )
    return attempt, carry_out, error is not None
