"""Frame folders: the layout of an extraction on disk, and reading it back.

Batches are folders ``{out}/{batch:04d}/`` of ``{global frame index:07d}.jpg`` files, with
``frames.json`` (the manifest, ``Extraction``) beside them. A frame folder of the user's
(SAM 2's own ``00042.jpg`` names) is read the same way: ``frame_paths``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2

from .errors import UserError, brief
from .identity import file_identity

MANIFEST = "frames.json"


CARRY_DIR = ".carry"  # single frames decoded again for chained batches (restore_frame)


FRAME_DIGITS = 7


MAX_FRAME = 2**31 - 1  # frame indices are stored as integers of 32 bits and more


def batch_name(index: int) -> str:
    """Folder name of batch ``index`` (``0003``; ``12000`` past 9999: ``BATCH_PATTERN``)."""
    return f"{index:04d}"


def frame_file(frame: int) -> str:
    """File name of a global frame index (``0000042.jpg``)."""
    return f"{frame:0{FRAME_DIGITS}d}.jpg"


def tmp_name(batch: str) -> str:
    """Where a batch is written until the whole extraction is done (``.0003.tmp``)."""
    return f".{batch}.tmp"


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
    #: The video file's identity when it was decoded (``identity.file_identity``): the
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
    whatever its modification time: ``identity.file_identity``).
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
        or data.get("source") != file_identity(video)
    ):
        return None
    return data.get("batches")


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
