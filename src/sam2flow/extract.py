"""Extraction: decode a video into JPEG batches (``sam2flow extract``, the checkpoint rule).

Each batch is written into a hidden temporary folder, all are renamed into place when the
video is decoded, and ``frames.json`` (the manifest a later step reads) is written last:
an interrupted extraction never leaves a batch that looks complete. A new extraction
removes only what the old manifest lists (after the new video has opened and given a
frame).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import cv2
import numpy as np

from .atomic import user_write_error, write_text
from .decoding import open_video, write_range
from .errors import BadValue, UserError
from .frame_folders import (
    CARRY_DIR,
    FRAME_SUFFIXES,
    MANIFEST,
    Extraction,
    batch_name,
    frame_file,
    lasting_batches,
    tmp_name,
)
from .identity import file_identity
from .ranges import decode_in_ranges
from .vocabulary import BATCH_PATTERN, DEFAULT_BATCH_SIZE, DEFAULT_QUALITY

log = logging.getLogger(__name__)


_BATCH_DIR = re.compile(rf"\.?{BATCH_PATTERN}(\.tmp)?")  # NNNN, or .NNNN.tmp while written


def extract_batches(
    video: str | Path,
    out_dir: str | Path,
    batch_size: int = DEFAULT_BATCH_SIZE,
    quality: int = DEFAULT_QUALITY,
    listing: str | Path | None = None,
    workers: int = 1,
) -> Extraction:
    """Decode ``video`` into JPEG batches under ``out_dir`` and write ``frames.json``.

    The frame count comes from decoding, not from the container's metadata. JPEG encoding
    and file writes run in threads beside the decoder. ``workers`` > 1 decodes ranges of
    the video in that many processes (``ranges``), the same frames and bytes as decoding
    it in one, checked where the ranges meet. ``listing``: a second copy of the manifest,
    kept where it outlives temporary frames.
    """
    if batch_size < 1:
        raise BadValue(f"batch_size must be >= 1, got {batch_size}")
    if not 1 <= quality <= 100:
        raise BadValue(f"quality must be in 1..100, got {quality}")
    out = Path(out_dir)
    cap = open_video(video)  # checked before anything in ``out`` is touched
    source = file_identity(video)
    ok, img = cap.read()
    if not ok:
        cap.release()
        raise UserError(
            "no decodable frames in video",
            video,
            "check the file plays, or re-encode it: ffmpeg -i IN -c:v libx264 OUT.mp4",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        cap.release()
        raise (user_write_error(exc, out) or exc) from exc
    ours = _remove_own_batches(out)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    height, width = img.shape[:2]
    try:  # a failed extraction leaves no JPEGs behind in its temporary folders
        frame, digests, declared, batches = _decode_into(
            video, cap, img, out, batch_size, quality, workers, ours
        )
    except BaseException:
        _remove_unfinished(out)
        raise
    result = Extraction(
        video=str(video),
        frames=frame,
        height=height,
        width=width,
        fps=fps,
        batch_size=batch_size,
        quality=quality,
        batches=batches,
        declared_frames=declared,
        digests={name: [digests[a], digests[b]] for name, (a, b) in batches.items()},
        source=source,
    )
    if result.shortfall():
        log.warning("%s; every decoded frame is kept", result.shortfall())
    write_text(out / MANIFEST, result.to_json())
    if listing:
        write_text(listing, result.to_json())
    log.info("%s: %d frames in %d batches of %d", video, frame, len(batches), batch_size)
    return result


def _decode_into(
    video: str | Path,
    cap: cv2.VideoCapture,
    img: np.ndarray,
    out: Path,
    batch_size: int,
    quality: int,
    workers: int,
    ours: set[str],
) -> tuple[int, dict[int, str], int | None, dict[str, list[int]]]:
    """Decode the video (``img``: its first frame, just read from ``cap``) into batch
    folders of ``out``: frames decoded, digests by frame, the container's declared count
    and the batches. ``cap`` is released. ``ours``: batch folders an earlier extraction
    wrote and left for the user's files in them."""
    # A stream without an index (a recording cut off, a raw stream) declares no count:
    # OpenCV reports 0, or a large negative number
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    declared = int(count) if count >= 1 else None
    done = None
    if workers > 1 and declared:
        cap.release()
        done = decode_in_ranges(video, out, declared, batch_size, quality, workers)
        if done is None:
            _remove_unfinished(out)
            cap = open_video(video)
            ok, img = cap.read()
    if done is None:
        try:
            frame, marks, _ = write_range(cap, img, out, 0, None, batch_size, quality)
        finally:
            cap.release()
        digests = marks.digests
    else:
        frame, digests = done
    batches = {
        batch_name(i): [first, min(first + batch_size, frame) - 1]
        for i, first in enumerate(range(0, frame, batch_size))
    }
    # Batches become visible together, and only where no frames of someone else's stand.
    taken = [name for name in batches if _in_the_way(out / name, ours)]
    if taken:
        raise UserError(
            f"folder {taken[0]} is in the way and was not written by sam2flow",
            out / taken[0],
            "move it, or extract into another --out folder",
        )
    for name in batches:
        _publish_batch(out, name)
    return frame, digests, declared, batches


def reuse_or_extract(
    video: str | Path,
    out_dir: str | Path,
    batch_size: int = DEFAULT_BATCH_SIZE,
    quality: int = DEFAULT_QUALITY,
    listing: str | Path | None = None,
    workers: int = 1,
) -> Extraction:
    """Frames for a run of the workflow. While the lasting copy of the manifest
    (``listing``) still matches the video and the settings, only the manifest is written:
    each batch job that runs decodes its own frames by seeking (``restore_batch``), so a
    rerun of one batch decodes that batch, not the video. Else the video is extracted."""
    batches = lasting_batches(listing, video, batch_size) if listing else None
    data = json.loads(Path(listing).read_text()) if batches is not None else {}
    if data.get("quality") != quality or not data.get("digests"):
        return extract_batches(video, out_dir, batch_size, quality, listing, workers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / MANIFEST, Path(listing).read_text())
    log.info(
        "%s: %d frames in %d batches, as extracted before (%s); each batch job that runs "
        "decodes its own frames",
        video,
        data["frames"],
        len(data["batches"]),
        listing,
    )
    return Extraction(**data)


def _remove_own_batches(out: Path) -> set[str]:
    """Remove what an earlier extraction into ``out`` wrote, and nothing else: the JPEGs its
    ``frames.json`` lists (a batch folder goes only once it is empty: a user's notes, a
    mask image or ``segment --out`` results inside it stay), its unfinished ``.NNNN.tmp``
    folders and the single frames decoded again for chained batches. Returns the batch
    folders it wrote that stay for the user's files in them."""
    manifest = out / MANIFEST
    kept: set[str] = set()
    listed: dict = {}
    if manifest.is_file():
        try:
            listed = json.loads(manifest.read_text()).get("batches", {})
        except (ValueError, AttributeError):
            listed = {}
        manifest.unlink()
    for name, span in listed.items() if isinstance(listed, dict) else ():
        folder = out / name
        if not _BATCH_DIR.fullmatch(name) or not folder.is_dir():
            continue
        try:
            first, last = (int(v) for v in span)
        except (TypeError, ValueError):
            continue
        for frame in range(first, last + 1):
            (folder / frame_file(frame)).unlink(missing_ok=True)
        try:
            folder.rmdir()
        except OSError:  # not empty: the user's files stay
            kept.add(name)
    _remove_unfinished(out)
    shutil.rmtree(out / CARRY_DIR, ignore_errors=True)
    return kept


def _remove_unfinished(out: Path) -> None:
    """Remove the ``.NNNN.tmp`` folders an extraction writes batches into until it is done."""
    for stale in out.glob(".*.tmp"):
        if stale.is_dir() and _BATCH_DIR.fullmatch(stale.name):
            shutil.rmtree(stale, ignore_errors=True)


def _publish_batch(out: Path, name: str) -> None:
    """Move a finished batch from its temporary folder into place. A folder already there
    (a batch folder of an earlier extraction, kept for the user's files in it) receives
    the JPEGs."""
    tmp, folder = out / tmp_name(name), out / name
    if not folder.exists():
        tmp.rename(folder)
        return
    for jpeg in sorted(tmp.iterdir()):
        jpeg.rename(folder / jpeg.name)
    tmp.rmdir()


def _in_the_way(folder: Path, ours: set[str]) -> bool:
    """Whether something not ours stands where a batch goes: anything but a batch folder of
    an earlier extraction kept for the user's files, and any frames in that one."""
    if not folder.exists():
        return False
    if folder.name not in ours or not folder.is_dir():
        return True
    return any(p.suffix.lower() in FRAME_SUFFIXES for p in folder.iterdir())
