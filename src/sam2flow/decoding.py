"""Decoding: a video opened with OpenCV, and a run of its frames written as JPEGs.

The one place a frame becomes JPEG bytes (``write_jpeg``): an extraction in one process,
its ranges in several (``ranges``) and a batch decoded again (``restore``) all write the
same bytes for the same pixels, and ``frame_digest`` checks that a seek landed where it
should.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .atomic import user_write_error
from .errors import UserError
from .frame_folders import batch_name, frame_file, tmp_name

log = logging.getLogger(__name__)
# FFmpeg's own messages ("moov atom not found") would precede our one-line error.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def frame_digest(img: np.ndarray) -> str:
    """A digest of one decoded frame's pixels: a seek landed on the frame it names when the
    frame found there has the digest recorded at extraction."""
    return hashlib.blake2b(img.tobytes(), digest_size=12).hexdigest()


def write_jpeg(img: np.ndarray, path: Path, quality: int) -> None:
    """Encode one frame as sam2flow's JPEG (the same pixels give the same bytes)."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")  # pragma: no mutate
    try:  # not ndarray.tofile: on a full disk its OSError has no errno to name the fix by
        with open(path, "wb") as f:
            f.write(buf)
    except OSError as exc:
        raise (user_write_error(exc, path) or exc) from exc


def check_not_still(path: Path) -> None:
    """A still image (a PNG or JPEG renamed ``.mp4``) opens as a one-frame "video" in
    OpenCV; FFmpeg's demuxer name says what it is (``png_pipe``, ``jpeg_pipe``, ...)."""
    import av

    try:
        with av.open(str(path)) as container:
            kind = container.format.name
    except (av.FFmpegError, OSError, ValueError):
        return  # not for this check to say: OpenCV's own error follows
    if kind.endswith("_pipe") or kind == "image2":
        raise UserError(
            f"a still image ({kind.removesuffix('_pipe')}), not a video",
            path,
            "give the video file (sam2flow segment --frames takes a folder of images)",
        )


def open_video(video: str | Path, threads: int = 0) -> cv2.VideoCapture:  # pragma: no mutate
    """Open a video for decoding; an unreadable file is a ``UserError`` naming it.
    ``threads``: FFmpeg's decoding threads (0: OpenCV's choice); the frames are the same."""
    path = Path(video)
    if not path.is_file():
        raise UserError("video not found", path, "check the path in the sample sheet")
    if path.stat().st_size == 0:
        raise UserError("video file is empty (0 bytes)", path, "copy the video again")
    check_not_still(path)
    params = [cv2.CAP_PROP_N_THREADS, threads] if threads else []  # pragma: no mutate
    cap = cv2.VideoCapture(str(path), cv2.CAP_ANY, params)  # pragma: no mutate
    if not cap.isOpened():
        raise UserError(
            "cannot open video (not a video, or a codec OpenCV cannot read)",
            path,
            "check the file, or re-encode it: ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4",
        )
    return cap


@dataclass
class Marks:
    """What ``write_range`` saw: digests of each batch's first and last frame and of the
    range's last (by global frame), and ``(digest, timestamp in ms)`` of its first
    ``head`` frames, to check where two ranges meet."""

    digests: dict[int, str] = field(default_factory=dict)
    head: list[tuple[str, float]] = field(default_factory=list)


def write_range(
    cap: cv2.VideoCapture,
    img: np.ndarray,
    out: Path,
    first: int,
    count: int | None,
    batch_size: int,
    quality: int,
    head: int = 0,  # pragma: no mutate
) -> tuple[int, Marks, np.ndarray | None]:
    """Write ``img`` (global frame ``first``, just read from ``cap``) and the frames after
    it, ``count`` of them or to the video's end (``None``), as JPEGs in their batches'
    temporary folders. Returns how many were written, their ``Marks``, and the next
    frame decoded (``None`` at the end)."""
    marks, pending, n, last = Marks(), [], 0, img
    with ThreadPoolExecutor(max_workers=2) as pool:  # pragma: no mutate
        while img is not None and (count is None or n < count):
            frame = first + n
            tmp_dir = out / tmp_name(batch_name(frame // batch_size))
            if n == 0 or frame % batch_size == 0:
                try:
                    tmp_dir.mkdir(exist_ok=True)  # two ranges may share a batch
                except OSError as exc:
                    raise (user_write_error(exc, tmp_dir) or exc) from exc
            if frame % batch_size in (0, batch_size - 1):
                marks.digests[frame] = frame_digest(img)
            if n < head:
                marks.head.append((frame_digest(img), cap.get(cv2.CAP_PROP_POS_MSEC)))
            pending.append(pool.submit(write_jpeg, img, tmp_dir / frame_file(frame), quality))
            while len(pending) > 8:  # pragma: no mutate (frames waiting to be encoded: bounded)
                pending.pop(0).result()  # pragma: no mutate
            last, n = img, n + 1
            ok, img = cap.read()
            img = img if ok else None  # pragma: no mutate
        for fut in pending:
            fut.result()
    marks.digests[first + n - 1] = frame_digest(last)
    return n, marks, img
