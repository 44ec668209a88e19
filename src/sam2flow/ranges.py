"""Extraction on several cores: ranges of one video decoded in parallel processes.

One decoder and one JPEG encoder keep about one core busy, and decoding cannot be split
inside a frame, so each worker process seeks to the start of its range (OpenCV,
``CAP_PROP_POS_FRAMES``) and writes that range's frames, as ``decoding.write_range`` does
for the whole video. A seek is trusted only where two ranges meet exactly: the frames a
worker decodes past the end of its range must be the next worker's first frames (the same
pixels and the same timestamps), and the last range must end at the frame count the
container declares. Anything else (a variable frame rate, an inexact index, a container
that miscounts) and the caller decodes the whole video in one process, so the frames
and their bytes are always those of a sequential decode.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import cv2

from .decoding import frame_digest, open_video, write_range

log = logging.getLogger(__name__)

SEAM = 8  # frames compared where two ranges meet
SEEK_LEAD = 16  # OpenCV's first step back when it seeks (cap_ffmpeg_impl.hpp, seek())
MIN_RANGE = 64  # frames: below this a worker's start-up and seek cost more than it saves


def workers_for(cores: int) -> int:
    """Worker processes for ``cores``: one process already keeps about two cores busy (a
    decoder and JPEG encoders in threads; on 2 cores, ranges ran no faster, measured), so
    a range per two cores, at most 4.

    >>> [workers_for(n) for n in (1, 2, 3, 4, 8, 16)]
    [1, 1, 1, 2, 4, 4]
    """
    return max(1, min(4, cores // 2))


def keyframes(video: str | Path) -> tuple[list[int], int] | None:
    """Frame indices (presentation order) of the video's keyframes and its frame count,
    from its packets alone (PyAV demuxes without decoding: 25 ms for m3v1mp4.mp4);
    ``None`` when a packet has no timestamp to place it by."""
    import av

    pts, keys = [], []
    try:
        with av.open(str(video)) as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.size == 0:  # the demuxer's final empty packet
                    continue
                if packet.pts is None:
                    return None
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
    except (av.FFmpegError, IndexError):
        return None
    rank = {p: i for i, p in enumerate(sorted(pts))}
    return sorted(rank[k] for k in keys), len(pts)


def plan_ranges(keys: list[int], frames: int, workers: int) -> list[tuple[int, int]]:
    """``(first frame, frame count)`` of each worker's range: each starts ``SEEK_LEAD``
    frames after a keyframe, the one nearest to an equal split, and holds at least
    ``MIN_RANGE`` frames. OpenCV seeks to ``SEEK_LEAD`` frames before the frame asked for
    and decodes forward from the keyframe at or before that: asked for a keyframe itself,
    it decodes the whole group of pictures before it (2.2 s of CPU at 1080p against 0.19 s
    for the frame 16 after it, measured), work done twice.

    >>> plan_ranges([0, 250, 500, 750], 1000, 2)
    [(0, 516), (516, 484)]
    >>> plan_ranges([0, 182, 366, 548, 797, 985], 1100, 3)
    [(0, 382), (382, 431), (813, 287)]
    >>> plan_ranges([0], 200, 2)
    [(0, 200)]
    """
    starts = [0]
    for i in range(1, workers):
        near = min(keys, key=lambda k: abs(k - i * frames / workers)) + SEEK_LEAD
        if near - starts[-1] >= MIN_RANGE and frames - near >= MIN_RANGE:
            starts.append(near)
    bounds = [*starts, frames]
    return [(a, b - a) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def decode_range(
    video: str, out: str, first: int, count: int, batch_size: int, quality: int, threads: int = 1
) -> tuple[int, dict[int, str], list, list]:
    """One worker: frames ``first`` .. ``first + count - 1`` into their batch folders, then
    ``SEAM`` frames more, decoded only to compare. Returns how many frames it wrote, the
    batch digests, and ``(digest, ms)`` of its first and of its extra frames."""
    cap = open_video(video, threads=threads)  # the worker's share of the cores
    try:
        if first:
            cap.set(cv2.CAP_PROP_POS_FRAMES, first)
        ok, img = cap.read()
        if not ok:
            return 0, {}, [], []
        n, marks, img = write_range(
            cap, img, Path(out), first, count, batch_size, quality, head=SEAM
        )
        tail = []
        while img is not None and len(tail) < SEAM:
            tail.append((frame_digest(img), cap.get(cv2.CAP_PROP_POS_MSEC)))
            ok, img = cap.read()
            img = img if ok else None
        return n, marks.digests, marks.head, tail
    finally:
        cap.release()


def _run_workers(video, out, plan, batch_size, quality) -> list | None:
    """Each range's ``decode_range`` result, or ``None`` when a worker failed. Every worker
    has ended when this returns (none may write into ``out`` after), and each holds its
    stdin open: it ends itself when this process dies."""
    procs, errors = [], []
    # Each worker decodes with its share of the cores: on 16 cores one process with
    # FFmpeg's own threads ran 1080p at 165 frames/s, 2 single-threaded ranges at 111.
    threads = max(1, len(os.sched_getaffinity(0)) // len(plan))
    try:
        for a, n in plan:
            errors.append(tempfile.TemporaryFile())
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "sam2flow.ranges"]
                    + [str(video), str(out), str(a), str(n), str(batch_size), str(quality)]
                    + [str(threads)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errors[-1],
                    text=True,
                )
            )
        results = []
        for p, err in zip(procs, errors, strict=True):
            stdout = p.stdout.read()
            if p.wait() != 0:
                err.seek(0)
                lines = err.read().decode(errors="replace").strip().splitlines()
                log.warning(
                    "%s: a decoding worker failed (%s); decoding in one process",
                    video,
                    lines[-1] if lines else f"exit status {p.returncode}",
                )
                return None
            got, digests, head, tail = json.loads(stdout)
            results.append((got, {int(k): v for k, v in digests.items()}, head, tail))
        return results
    finally:
        for p in procs:
            p.kill()
            p.wait()
            p.stdin.close()
            p.stdout.close()
        for err in errors:
            err.close()


def _exit_with_parent() -> None:
    """A worker whose parent died (killed by SLURM, ``kill -9``) must not go on writing
    into a folder that a rerun extracts into: its stdin ends with the parent."""
    sys.stdin.read()
    os._exit(1)


def mismatch(plan: list[tuple[int, int]], results: list) -> int | None:
    """The first frame where the workers' ranges do not join into one sequential decode,
    else ``None``: a range shorter than planned, frames past a range's end unlike the next
    range's first (pixels or timestamps), or frames past the last range's end (more frames
    than the container declares).

    >>> plan = [(0, 100), (100, 100)]
    >>> marks = [("a", 4.0), ("b", 4.04)]
    >>> mismatch(plan, [(100, {}, [], marks), (100, {}, marks, [])]) is None
    True
    >>> mismatch(plan, [(100, {}, [], marks), (100, {}, marks[1:] + [("c", 4.08)], [])])
    100
    >>> mismatch(plan, [(100, {}, [], marks), (100, {}, marks, [("z", 8.0)])])
    200
    """
    for i, ((first, count), (got, _, _, tail)) in enumerate(zip(plan, results, strict=True)):
        following = results[i + 1][2] if i + 1 < len(results) else []
        if got != count or tail != following:
            return first + min(got, count)
    return None


def decode_in_ranges(
    video: str | Path, out: Path, declared: int, batch_size: int, quality: int, workers: int
) -> tuple[int, dict[int, str]] | None:
    """The frame count and batch digests after ``workers`` processes wrote the video's
    ranges into ``out``'s temporary batch folders; ``None`` when the ranges do not meet
    exactly (the caller then decodes sequentially) or one range is not worth a process."""
    if workers < 2 or declared < 2 * MIN_RANGE:  # one range at most: skip the packet scan
        return None
    found = keyframes(video)
    if found is None or found[1] != declared:
        return None
    plan = plan_ranges(found[0], declared, workers)
    if len(plan) < 2:
        return None
    # Fresh interpreters (not fork): the caller may hold threads, and a Snakemake script
    # as ``__main__`` must not run again in a child, as multiprocessing's spawn would do.
    results = _run_workers(video, out, plan, batch_size, quality)
    if results is None:
        return None
    where = mismatch(plan, results)
    if where is not None:
        log.warning(
            "%s: decoding in ranges did not meet at frame %d (seek not frame-exact, or the "
            "container miscounts); decoding the video in one process",
            video,
            where,
        )
        return None
    digests = {k: v for r in results for k, v in r[1].items()}
    log.info("%s: %d frames decoded in %d ranges in parallel", video, declared, len(plan))
    return declared, digests


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    video, out, *numbers = sys.argv[1:]
    result = decode_range(video, out, *map(int, numbers))
    print(json.dumps(result))
