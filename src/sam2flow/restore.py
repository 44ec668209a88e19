"""Restore: frames of a batch decoded again after the temporary frames were deleted.

A later run of one batch decodes that batch, not the video: by seeking, trusted only when
the frames found there have the digests recorded at extraction, else from frame 0. The
same frames give the same JPEG bytes (``decoding.write_jpeg``).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2

from .atomic import atomic_path
from .decoding import frame_digest, open_video, write_jpeg
from .errors import UserError
from .frame_folders import CARRY_DIR, MANIFEST, frame_file, frame_paths, read_manifest, tmp_name

log = logging.getLogger(__name__)


@dataclass
class Restored:
    """How frames were decoded again: how many the decoder gave after the seek (from frame
    0 when there was no seek), and whether the seek was used."""

    frames_decoded: int
    seeked: bool


def _decode_span(
    video: str,
    first: int,
    last: int,
    digests: list[str] | None,
    sink,
    restart,
) -> Restored:
    """Hand frames ``first..last`` of ``video`` to ``sink(frame, img)``: after a seek when
    the frames the seek gives start and end with the recorded ``digests``; else (no
    digests, or a seek that landed elsewhere) by decoding from frame 0 after ``restart()``.
    """
    cap = open_video(video)
    try:
        if digests:
            cap.set(cv2.CAP_PROP_POS_FRAMES, first)
            ok, img = cap.read()
            if ok and frame_digest(img) == digests[0]:
                decoded, frame = 1, first
                while True:
                    sink(frame, img)
                    if frame == last:
                        break
                    ok, img = cap.read()
                    if not ok:
                        break
                    decoded, frame = decoded + 1, frame + 1
                if frame == last and frame_digest(img) == digests[1]:
                    return Restored(decoded, True)
            log.warning("%s: a seek to frame %d was not frame-exact; decoding from 0", video, first)
            restart()
            cap.release()
            cap = open_video(video)
        decoded = 0
        for frame in range(last + 1):
            ok, img = cap.read()
            if not ok:
                break
            decoded += 1
            if frame == first and digests and frame_digest(img) != digests[0]:
                break
            if frame >= first:
                sink(frame, img)
        else:
            if not digests or frame_digest(img) == digests[1]:
                return Restored(decoded, False)
    finally:
        cap.release()
    raise UserError(
        f"frames {first}-{last} decode differently than when they were extracted",
        video,
        "the video changed: extract it again (delete the video's results folder)",
    )


def restore_batch(frames_root: str | Path, batch: str) -> Restored | None:
    """Decode batch ``batch`` of the extraction in ``frames_root`` again when its folder is
    gone (temporary frames deleted after a run), from the video its manifest names: the same
    frames, so the same JPEG bytes. ``None`` when there is nothing to restore (the folder is
    there, or no manifest lists it)."""
    root = Path(frames_root)
    if (root / batch).exists() or not (root / MANIFEST).is_file():
        return None
    manifest = read_manifest(root)
    span = manifest.batches.get(batch)
    if span is None:
        return None
    tmp = root / tmp_name(batch)

    def restart() -> None:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()

    restart()
    done = _decode_span(
        manifest.video,
        span[0],
        span[1],
        manifest.digests.get(batch),
        lambda frame, img: write_jpeg(img, tmp / frame_file(frame), manifest.quality),
        restart,
    )
    tmp.rename(root / batch)
    log.info("batch %s: frames %d-%d decoded again (%s)", batch, *span, _how(done))
    return done


def _how(done: Restored) -> str:
    """How frames were decoded again, for the log: a seek is cheap, decoding from the
    video's start costs every frame before."""
    where = "after a seek" if done.seeked else "from the video's start"
    return f"{done.frames_decoded} frames decoded, {where}"


def restore_frame(frames_root: str | Path, frame: int) -> Path | None:
    """The JPEG of global ``frame`` of the extraction in ``frames_root``: from its batch
    folder, or, when that folder is gone, decoded again into ``.carry/`` (a chained batch
    needs the previous batch's last frame). ``None`` when no batch holds the frame."""
    root = Path(frames_root)
    manifest = read_manifest(root)
    for name, (first, last) in manifest.batches.items():
        if not first <= frame <= last:
            continue
        if (root / name).exists():
            return frame_paths(root / name).get(frame)
        recorded = manifest.digests.get(name)
        digest = recorded and {first: recorded[0], last: recorded[1]}.get(frame)
        path = root / CARRY_DIR / frame_file(frame)
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path) as tmp:
            done = _decode_span(
                manifest.video,
                frame,
                frame,
                [digest, digest] if digest else None,
                lambda _, img: write_jpeg(img, Path(tmp), manifest.quality),
                lambda: None,  # pragma: no mutate
            )
        log.info("frame %d decoded again (%s)", frame, _how(done))
        return path
    return None
