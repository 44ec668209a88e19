"""A video's merged masks in one HDF5 file, read by frame and object without the rest.

An hour of 1080p video is 108,000 frames: a zip member must be inflated from its start to
reach frame 81,000, while HDF5 keeps an index of chunks. Each frame's packed masks (all
its objects, ``np.packbits`` as in a batch's ``masks.npz``) are one gzip chunk, so a read
inflates only the frames asked for, and writing copies packed batch masks without
unpacking them (10x faster than storing one byte per pixel, measured at 1080p). HDF5 is
read by h5py, MATLAB (``h5read``), R (``rhdf5``) and Fiji as well.

Layout (``h5dump -H``): datasets ``frames`` (N, int64, global index), ``object_ids``
(K), ``masks`` (N x K x ceil(H*W/8), uint8, bits big-endian as ``np.packbits``),
``status`` (N x K, ASCII); attributes ``height``, ``width`` and ``layout``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from .errors import UserError, brief

LAYOUT = "sam2flow-masks-1"
_READ_BLOCK = 256  # frames read at once when streaming: bounded memory, few h5py calls


class MaskFileWriter:
    """Appends batches of packed masks to a new mask file, in global frame order."""

    def __init__(self, path: str | Path, object_ids: list[int], height: int, width: int):
        self.file = h5py.File(path, "w")
        self.file.attrs.update(layout=LAYOUT, height=height, width=width)
        k, nbytes = len(object_ids), math.ceil(height * width / 8)
        self.file.create_dataset("object_ids", data=np.asarray(object_ids, dtype=np.int64))
        self.frames = self.file.create_dataset("frames", (0,), np.int64, maxshape=(None,))
        self.masks = self.file.create_dataset(
            "masks",
            (0, k, nbytes),
            np.uint8,
            maxshape=(None, k, nbytes),
            chunks=(1, k, nbytes),
            compression="gzip",
            compression_opts=1,
        )
        self.status = self.file.create_dataset(
            "status", (0, k), "S16", maxshape=(None, k), chunks=(4096, k), compression="gzip"
        )

    def append(self, frames: np.ndarray, packed: np.ndarray, status: np.ndarray) -> None:
        """Add ``len(frames)`` frames: packed masks (frames x K x bytes) and their statuses."""
        n, m = self.frames.shape[0], len(frames)
        for dataset, values in (
            (self.frames, frames),
            (self.masks, packed),
            (self.status, np.char.encode(status.astype(str), "ascii")),
        ):
            dataset.resize(n + m, axis=0)
            dataset[n:] = values

    def __enter__(self) -> MaskFileWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def _open(path: str | Path):
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(
            f"cannot read the mask file ({brief(exc)})", path, "merge the video again"
        ) from exc
    if f.attrs.get("layout") != LAYOUT:
        f.close()
        raise UserError("not a sam2flow mask file", path, "merge the video again")
    return f


def describe(path: str | Path) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(frames, object ids, height, width)`` of a mask file, without its masks."""
    with _open(path) as f:
        return f["frames"][:], f["object_ids"][:], int(f.attrs["height"]), int(f.attrs["width"])


def read_status(path: str | Path) -> np.ndarray:
    """Each frame's and object's status (frames x objects, str)."""
    with _open(path) as f:
        return f["status"][:].astype(str)


def iter_packed(path: str | Path) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame, packed masks of its objects)`` in order, a block of frames at a time."""
    with _open(path) as f:
        frames, masks = f["frames"], f["masks"]
        for start in range(0, len(frames), _READ_BLOCK):
            block = masks[start : start + _READ_BLOCK]
            for frame, packed in zip(frames[start : start + _READ_BLOCK], block, strict=True):
                yield int(frame), packed


def read_masks(
    path: str | Path, frames: range | list[int] | None = None, objects: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frames, object ids, bool masks frames x objects x H x W)`` of the frames and
    objects asked for (default all); only their chunks are read."""
    with _open(path) as f:
        index, ids = f["frames"][:], f["object_ids"][:].tolist()
        h, w = int(f.attrs["height"]), int(f.attrs["width"])
        cols = _columns(ids, objects, path)
        rows = _rows(index, frames, path)
        packed = _read_rows(f["masks"], rows)
    bits = np.unpackbits(packed[:, cols], axis=-1, count=h * w)
    masks = bits.reshape(len(rows), len(cols), h, w).astype(bool)
    return index[rows], np.asarray(ids, dtype=np.int64)[cols], masks


def _read_rows(masks, rows: np.ndarray) -> np.ndarray:
    """The rows asked for, in the order asked: a slice when they run on, else each once."""
    if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
        return masks[rows[0] : rows[0] + len(rows)]
    unique = np.unique(rows)
    if not len(unique):
        return np.zeros((0, *masks.shape[1:]), np.uint8)
    return masks[unique][np.searchsorted(unique, rows)]


def _columns(ids: list[int], objects: list[int] | None, path) -> list[int]:
    if objects is None:
        return list(range(len(ids)))
    missing = [o for o in objects if o not in ids]
    if missing:
        raise UserError(f"no object {missing[0]} (objects: {ids})", path, "ask for one of them")
    return [ids.index(o) for o in objects]


def _rows(index: np.ndarray, frames, path) -> np.ndarray:
    if frames is None:
        return np.arange(len(index))
    wanted = np.asarray(list(frames), dtype=np.int64)
    rows = np.searchsorted(index, wanted)
    held = np.append(index, -1)[rows] == wanted  # -1: past the last frame
    if not held.all():
        span = f"{index[0]}-{index[-1]}" if len(index) else "none"
        raise UserError(
            f"no frame {wanted[~held][0]} (frames {span})", path, "ask for frames it holds"
        )
    return rows
