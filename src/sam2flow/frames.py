"""Frames: decode a video into JPEG batches, and read them back lazily for the model.

Batches are folders ``{out}/{batch:04d}/`` of ``{global frame index:07d}.jpg`` files. Each
batch is written into a hidden temporary folder, all are renamed into place when the video
is decoded, and ``frames.json`` (the manifest a later step reads) is written last: an
interrupted extraction never leaves a batch that looks complete. A new extraction removes
only what the old manifest lists (after the new video has opened and given a frame).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .atomic import atomic_path, user_write_error, write_text
from .errors import BadValue, UserError, brief
from .identity import video_identity

if TYPE_CHECKING:  # torch only where frames become model input: extraction starts fast
    import torch

log = logging.getLogger(__name__)
# FFmpeg's own messages ("moov atom not found") would precede our one-line error.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

MANIFEST = "frames.json"
CARRY_DIR = ".carry"  # single frames decoded again for chained batches (restore_frame)
_BATCH_DIR = re.compile(r"\.?\d{4,}(\.tmp)?")  # NNNN, or .NNNN.tmp while written
FRAME_DIGITS = 7
MAX_FRAME = 2**31 - 1  # frame indices are stored as integers of 32 bits and more
DEFAULT_BATCH_SIZE = 400
DEFAULT_QUALITY = 95
# SAM 2's normalisation (ImageNet mean and std).
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def batch_name(index: int) -> str:
    """Folder name of batch ``index`` (``0003``)."""
    return f"{index:04d}"


def frame_file(frame: int) -> str:
    """File name of a global frame index (``0000042.jpg``)."""
    return f"{frame:0{FRAME_DIGITS}d}.jpg"


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


@dataclass
class Extraction:
    """What ``extract_batches`` wrote: the content of ``frames.json``."""

    video: str
    frames: int
    height: int
    width: int
    fps: float
    batch_size: int
    quality: int
    batches: dict[str, list[int]]  # batch name -> [first frame, last frame]
    declared_frames: int | None = None  # the container's frame count, when it gives one
    #: batch name -> [digest of its first frame's pixels, of its last frame's]: a batch
    #: decoded again by seeking is checked against them (``restore_batch``).
    digests: dict[str, list[str]] = field(default_factory=dict)
    #: The video file's identity when it was decoded (``identity.video_identity``): the
    #: manifest describes the file at its path only while that file has it.
    source: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)  # pragma: no mutate

    def shortfall(self) -> str | None:
        """A warning when fewer frames decoded than the container declares (a truncated or
        damaged video), else ``None``.

        >>> Extraction("v.mp4", 106, 1, 1, 30.0, 400, 95, {}, declared_frames=300).shortfall()
        'v.mp4: 106 frames decoded but the container declares 300 (truncated or damaged video?)'
        """
        if not self.declared_frames or self.frames >= self.declared_frames:
            return None
        return (
            f"{self.video}: {self.frames} frames decoded but the container declares "
            f"{self.declared_frames} (truncated or damaged video?)"
        )


def read_manifest(frames_dir: str | Path) -> Extraction:
    """Read ``frames.json`` of an extraction folder."""
    path = Path(frames_dir) / MANIFEST
    try:
        return Extraction(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise UserError(
            "frames not extracted", path, "run 'sam2flow extract' (or the workflow) first"
        ) from None


def lasting_batches(
    listing: str | Path, video: str | Path, batch_size: int
) -> dict[str, list[int]] | None:
    """The batches of ``video`` from the lasting copy of its manifest (``listing``), or
    ``None`` when that copy is missing or stale and the video must be extracted again.

    The copy outlives temporary frames, so that a finished video's later runs plan its
    batches without decoding it. It is stale when it names another file or batch size, or
    when the file at that path is no longer the one decoded (another content or length,
    whatever its modification time: ``identity.video_identity``).
    """
    listing, video = Path(listing), Path(video)
    if not listing.is_file() or not video.is_file():
        return None
    try:
        data = json.loads(listing.read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(data, dict)
        or data.get("batch_size") != batch_size
        or data.get("video") != str(video)
        or data.get("source") != video_identity(video)
    ):
        return None
    return data.get("batches")


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
    source = video_identity(video)
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
        from .ranges import decode_in_ranges

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
            tmp_dir = out / _tmp_name(batch_name(frame // batch_size))
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
    tmp = root / _tmp_name(batch)

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


def check_batch_frames(frames: list[int], batch_dir: Path, manifest: Extraction) -> None:
    """A batch folder must hold exactly the frames its manifest lists: a missing frame
    would otherwise shift or drop a slot, an extra one belongs to something else.
    """
    span = manifest.batches.get(batch_dir.name)
    if span is None:
        return
    _check_span(
        frames,
        batch_dir,
        span,
        f"its {MANIFEST} lists frames {span[0]}-{span[1]}",
        "extract the video again (sam2flow extract, or delete the video's results folder)",
    )


def check_consecutive(frames: list[int], batch_dir: Path) -> None:
    """A folder of frames without a manifest (a user's ``%05d.jpg`` folder) must hold
    consecutive frames: a gap would leave a frame without a slot.

    >>> check_consecutive([0, 1, 2, 4], Path("gap"))
    Traceback (most recent call last):
    ...
    sam2flow.errors.UserError: frame 3 is missing (1 missing, 0 extra; the folder holds \
frames 0-4): gap: give every frame from the first to the last, or extract the video with \
sam2flow extract
    """
    where = f"the folder holds frames {frames[0]}-{frames[-1]}"
    fix = "give every frame from the first to the last, or extract the video with sam2flow extract"
    _check_span(frames, batch_dir, [frames[0], frames[-1]], where, fix)


def _check_span(frames: list[int], batch_dir: Path, span: list[int], where: str, fix: str) -> None:
    expected = range(span[0], span[1] + 1)
    missing = sorted(set(expected) - set(frames))
    extra = sorted(set(frames) - set(expected))
    if missing or extra:
        what = f"frame {missing[0]} is missing" if missing else f"frame {extra[0]} does not belong"
        count = f"{len(missing)} missing, {len(extra)} extra"
        raise UserError(f"{what} ({count}; {where})", batch_dir, fix)


#: Frame file extensions SAM 2's ``load_video_frames`` accepts (any case here).
FRAME_SUFFIXES = (".jpg", ".jpeg")


def frame_paths(batch_dir: str | Path) -> dict[int, Path]:
    """Global frame index -> JPEG of a frame folder, in frame order.

    Any integer name is accepted, as SAM 2's own loader does (``00042.jpg`` from SAM 2's
    README command, ``0000042.jpg`` from ``sam2flow extract``, ``.jpeg``, any case). Two
    files with one index, or a JPEG whose name is not an integer, is a ``UserError``.

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> for name in ("00001.jpg", "00000.JPEG", "notes.txt"): _ = (d / name).write_bytes(b"")
    >>> [p.name for p in frame_paths(d).values()]
    ['00000.JPEG', '00001.jpg']
    """
    batch_dir = Path(batch_dir)
    if not batch_dir.is_dir():
        raise UserError("frame folder not found", batch_dir, "check the path")
    found: dict[int, Path] = {}
    for path in batch_dir.iterdir():
        if path.suffix.lower() not in FRAME_SUFFIXES:
            continue
        if not path.stem.isdigit():
            raise UserError(
                "frame file name is not an integer frame index",
                path,
                "name frames by their index (ffmpeg ... -start_number 0 DIR/%05d.jpg)",
            )
        index = int(path.stem)
        if index > MAX_FRAME:
            raise UserError(
                f"frame file name is not a frame index (over {MAX_FRAME:,})",
                path,
                "name frames by their index (ffmpeg ... -start_number 0 DIR/%05d.jpg)",
            )
        if index in found:
            raise UserError(
                f"two files for frame {index}: {found[index].name} and {path.name}",
                batch_dir,
                "keep one file per frame index",
            )
        found[index] = path
    if not found:
        raise UserError("no JPEG frames in batch folder", batch_dir, "extract the frames again")
    return dict(sorted(found.items()))


def _tmp_name(batch: str) -> str:
    """Where a batch is written until the whole extraction is done (``.0003.tmp``)."""
    return f".{batch}.tmp"


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
    tmp, folder = out / _tmp_name(name), out / name
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


def list_frames(batch_dir: str | Path) -> list[int]:
    """Global frame indices of the JPEGs in a frame folder, sorted."""
    return list(frame_paths(batch_dir))


def check_frame_sizes(paths: dict[int, Path]) -> None:
    """Every frame of a folder has the first one's size (read from the file headers):
    SAM 2 would scale each frame to its input size, and masks of another size than the
    frame they belong to would be written without a word."""
    from PIL import Image

    first = None
    for frame, path in paths.items():
        try:
            with Image.open(path) as img:
                size = img.size
        except (OSError, SyntaxError) as exc:
            raise UserError(
                f"cannot read frame ({brief(exc)})", path, "extract the frames again"
            ) from exc
        if first is None:
            first = (frame, size)
        elif size != first[1]:
            (f0, (w0, h0)), (w, h) = first, size
            raise UserError(
                f"frame {frame} is {w}x{h} but frame {f0} is {w0}x{h0}",
                path,
                "give a folder of one video's frames, all of one size",
            )


def frame_size(path: str | Path) -> tuple[int, int]:
    """Height and width (video resolution) of one frame file."""
    img = cv2.imread(str(path))
    if img is None:
        raise UserError("cannot read frame", path, "extract the frames again")
    return img.shape[0], img.shape[1]


#: How frames become model input. ``sam2``: SAM 2's own loader (PIL decode, PIL's bicubic
#: resize, float64 scaling), so masks are bit-identical to stock SAM 2's on the same JPEGs.
#: ``opencv``: OpenCV decode and bilinear resize in float32, faster (BENCHMARKS.md) but the
#: model sees slightly different pixels.
DECODERS = ("sam2", "opencv")


def sam2_frame(path: Path, image_size: int) -> torch.Tensor:
    """One frame exactly as SAM 2's ``load_video_frames`` makes it (its own loader)."""
    import torch
    from sam2.utils.misc import _load_img_as_tensor

    img, _, _ = _load_img_as_tensor(str(path), image_size)
    return (img.float() - torch.from_numpy(_MEAN)[:, None, None]) / torch.from_numpy(_STD)[
        :, None, None
    ]


def opencv_frame(path: Path, image_size: int) -> torch.Tensor:
    """One frame through OpenCV: decode, bilinear resize, normalise in float32."""
    import torch

    data = np.fromfile(path, dtype=np.uint8)
    if path.suffix.lower() in (".jpg", ".jpeg") and b"\xff\xd9" not in bytes(data[-64:]):
        # OpenCV decodes a JPEG cut short without an error (the rest grey): refuse it
        raise UserError("cannot read frame (JPEG cut short)", path, "extract the frames again")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)  # pragma: no mutate
    if img is None:
        raise UserError("cannot read frame", path, "extract the frames again")
    size = (image_size, image_size)
    img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)  # pragma: no mutate
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)
    rgb *= 1.0 / 255.0
    rgb -= _MEAN
    rgb /= _STD
    return torch.from_numpy(rgb).permute(2, 0, 1)


def decode_threads(threads: int | None, read_ahead: int) -> int:
    """Decoding threads for a ``FrameSource``: as asked (or every core this process may
    use), and no more than the frames there can be to decode at once.

    >>> decode_threads(4, 8), decode_threads(16, 8), decode_threads(0, 8), decode_threads(3, 0)
    (4, 9, 1, 1)
    """
    wanted = len(os.sched_getaffinity(0)) if threads is None else int(threads)
    return max(1, min(wanted, read_ahead + 1))


class FrameSource:
    """Frames of a batch as SAM 2 wants them, decoded on demand and ahead of the model.

    Stands in for the ``images`` of SAM 2's inference state (as sam2's own
    ``async_loading_frames`` does): ``len()`` and ``source[i]`` returning a normalised
    3 x S x S float tensor for local index ``i``. Only a few frames are held: the one in
    use and ``read_ahead`` frames decoded in the direction of travel by ``threads``
    threads (default: the cores this process may use; at 1024 px one JPEG takes 35-45 ms
    of a core, so one thread starves a GPU). Each frame is decoded on its own, so the
    tensors are the same whatever the number of threads. ``decoder`` is one of
    ``DECODERS``.
    """

    def __init__(
        self,
        paths: list[Path],
        image_size: int,
        read_ahead: int = 8,
        decoder: str = "sam2",
        threads: int | None = None,
    ) -> None:
        if not paths:
            raise ValueError("FrameSource needs at least one frame")
        if decoder not in DECODERS:
            raise BadValue(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        self._decode = sam2_frame if decoder == "sam2" else opencv_frame
        self.paths = list(paths)
        self.image_size = int(image_size)
        self.read_ahead = max(0, int(read_ahead))
        self.workers = decode_threads(threads, self.read_ahead)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="frames")
        self._futures: OrderedDict[int, Future] = OrderedDict()
        self._lock = threading.Lock()
        self._last = -1  # pragma: no mutate
        self.video_height, self.video_width = frame_size(self.paths[0])

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> torch.Tensor:
        """Decode, resize and normalise one frame (runs in the reader thread)."""
        try:
            return self._decode(self.paths[index], self.image_size)
        except (OSError, SyntaxError) as exc:  # PIL: unreadable or truncated file
            raise UserError(
                f"cannot read frame ({brief(exc)})", self.paths[index], "extract the frames again"
            ) from exc

    def __getitem__(self, index: int) -> torch.Tensor:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        with self._lock:
            step = -1 if index < self._last else 1
            self._last = index
            fut = self._futures.pop(index, None) or self._pool.submit(self.load, index)
            wanted = {index + step * k for k in range(1, self.read_ahead + 1)}
            for stale in [i for i in self._futures if i not in wanted]:
                self._futures.pop(stale).cancel()
            for i in sorted(wanted, key=lambda i: abs(i - index)):
                if 0 <= i < len(self) and i not in self._futures:  # pragma: no mutate
                    self._futures[i] = self._pool.submit(self.load, i)
        return fut.result()

    def close(self) -> None:
        """Stop the reader thread and drop frames read ahead."""
        with self._lock:
            for fut in self._futures.values():
                fut.cancel()
            self._futures.clear()
        self._pool.shutdown(wait=True)
