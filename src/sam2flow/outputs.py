"""Outputs: per-batch masks, frame table and memory record, and the per-video merge.

A batch's outputs have exactly one slot per frame and object; a frame that could not be
segmented keeps its slot, with an empty mask and its status. Everything a later step
reads is written atomically (``atomic.atomic_path``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd

from . import maskfile
from .atomic import atomic_path, check_writable, write_text
from .errors import UserError, brief
from .maskfile import MaskFileWriter
from .record import FRAME_STATUSES, check_record
from .vocabulary import NO_PROMPT

if TYPE_CHECKING:  # reading masks needs no torch: a reader's process stays small
    import torch

log = logging.getLogger(__name__)

COLUMNS = ["frame", "object", "status", "area", "cx", "cy", "x0", "y0", "x1", "y1", "score"]
_PENDING = ""


def mask_scores(logits: np.ndarray) -> np.ndarray:
    """Per object, the mean probability inside its mask (0 for an empty mask).

    >>> mask_scores(np.array([[[0.0, -3.0]], [[-1.0, -2.0]]], dtype=np.float32)).round(3).tolist()
    [0.0, 0.0]
    >>> float(mask_scores(np.array([[[2.0, -3.0]]], dtype=np.float32))[0].round(3))
    0.881
    """
    inside = logits > 0
    probs = np.where(inside, 1.0 / (1.0 + np.exp(-np.where(inside, logits, 0.0))), 0.0)
    return probs.sum(axis=(1, 2)) / np.maximum(inside.sum(axis=(1, 2)), 1)


#: Frames whose masks may wait for packing at once (each is objects x H x W bytes).
MAX_BACKLOG = 4


class MaskStore:
    """Masks (bit-packed, video resolution) and per-frame statistics of one batch.

    The packed masks go to an unnamed file (in ``spill_dir``, by default the system's
    temporary folder) as each frame is done, not into the process's memory: at 1080p x 5
    objects they are 1.3 MB a frame, 0.5 GB for 400 frames, and a job's host memory
    would grow with its batch. They are streamed from there into ``masks.npz``.
    """

    def __init__(
        self,
        frames: list[int],
        object_ids: list[int],
        height: int,
        width: int,
        spill_dir: str | Path | None = None,
    ):
        self.frames = np.asarray(frames, dtype=np.int64)
        self.object_ids = np.asarray(object_ids, dtype=np.int64)
        self.height, self.width = int(height), int(width)
        self.index = {int(f): i for i, f in enumerate(frames)}
        n, k = len(frames), len(object_ids)
        self.nbytes = math.ceil(self.height * self.width / 8)  # one object's packed mask
        self.shape = (n, k, self.nbytes)
        # Unlinked at once: nothing is left behind, whatever ends the process.
        self._spill = tempfile.TemporaryFile(dir=spill_dir, prefix=".masks-")
        self._spill.truncate(n * k * self.nbytes)  # sparse: every mask empty until put
        self.status = np.full((n, k), _PENDING, dtype=object)
        self.stats = np.full((n, k, 8), np.nan, dtype=np.float64)  # area cx cy x0 y0 x1 y1 score
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="masks")
        self._pending: list = []

    def put(self, frame: int, logits: torch.Tensor) -> None:
        """Store SAM 2's video-resolution logits (objects x 1 x H x W) for ``frame``.

        Only the threshold and a strided copy of the logits (every 4th pixel, for the score)
        leave the device here; the score, packing and statistics run in a background thread
        so they overlap with the model's next frame.
        """
        i = self.index[int(frame)]
        masks = (logits[:, 0] > 0).cpu().numpy()
        strided = logits[:, 0, ::4, ::4].float().cpu().numpy()
        try:
            self._pending.append(self._pool.submit(self._store, i, masks, strided))
        except RuntimeError:  # "can't start new thread": the host is out of memory
            self._store(i, masks, strided)  # so this frame is stored here, and not lost
            return
        # Frames that arrive faster than they are packed wait here: without a bound, their
        # unpacked masks piled up and host memory grew with the batch's length.
        while len(self._pending) > MAX_BACKLOG:
            self._pending.pop(0).result()

    def _store(self, i: int, masks: np.ndarray, strided: np.ndarray) -> None:
        scores = mask_scores(strided)
        for k, mask in enumerate(masks):
            m8 = mask.view(np.uint8)
            mo = cv2.moments(m8, binaryImage=True)
            area = int(round(mo["m00"]))
            if area == 0:
                self.status[i, k] = "empty"
                self._write(i, k, bytes(self.nbytes))
                self.stats[i, k] = [0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 0.0]
                continue
            x, y, w, h = cv2.boundingRect(m8)
            self._write(i, k, np.packbits(mask.ravel()).tobytes())
            self.status[i, k] = "ok"
            self.stats[i, k] = [
                area,
                mo["m10"] / mo["m00"],
                mo["m01"] / mo["m00"],
                x,
                y,
                x + w - 1,
                y + h - 1,
                float(scores[k]),
            ]

    def flush(self) -> None:
        """Wait for the background packing of every frame put so far (re-raises errors)."""
        pending, self._pending = self._pending, []
        for fut in pending:
            fut.result()

    def _write(self, i: int, k: int, data: bytes) -> None:
        """Packed masks of frame slot ``i`` from object slot ``k`` on."""
        os.pwrite(self._spill.fileno(), data, (i * len(self.object_ids) + k) * self.nbytes)

    def _read(self, i: int, k: int, count: int) -> bytes:
        """``count`` packed masks from frame slot ``i``, object slot ``k`` on."""
        size = count * self.nbytes
        offset = (i * len(self.object_ids) + k) * self.nbytes
        data = os.pread(self._spill.fileno(), size, offset)
        if len(data) != size:
            raise OSError(f"the masks' spill file gave {len(data)} of {size} bytes")
        return data

    @property
    def packed(self) -> np.ndarray:
        """Every packed mask, frames x objects x bytes, in memory (for small batches)."""
        self.flush()
        data = self._read(0, 0, len(self.frames) * len(self.object_ids))
        return np.frombuffer(data, dtype=np.uint8).reshape(self.shape).copy()

    def write_masks(self, fp, chunk_bytes: int = 8 << 20) -> None:
        """The packed masks as a ``.npy`` into the open file ``fp``, about ``chunk_bytes``
        at a time, never the whole batch in memory."""
        self.flush()
        n, k, _ = self.shape
        frames_at_once = max(1, chunk_bytes // (k * self.nbytes or 1))
        header = {"descr": "|u1", "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_2_0(fp, header)
        for start in range(0, n, frames_at_once):
            fp.write(self._read(start, 0, min(frames_at_once, n - start) * k))

    def mask(self, frame: int, k: int) -> np.ndarray:
        """The bool mask of object slot ``k`` on ``frame``."""
        self.flush()
        row = np.frombuffer(self._read(self.index[int(frame)], k, 1), dtype=np.uint8)
        bits = np.unpackbits(row, count=self.height * self.width)
        return bits.reshape(self.height, self.width).astype(bool)

    def mark(self, frames: list[int], status: str) -> None:
        """Give ``frames`` an empty mask and ``status`` (``skipped_oom``, ``no_prompt``)."""
        self.flush()
        for f in frames:
            i = self.index[int(f)]
            self.status[i] = status
            self._write(i, 0, bytes(self.nbytes * len(self.object_ids)))
            self.stats[i] = np.nan

    def status_counts(self) -> dict[str, int]:
        """Frames x objects per status."""
        self.flush()
        values, counts = np.unique(self.status.astype(str), return_counts=True)
        return {str(v): int(c) for v, c in zip(values, counts, strict=True)}

    def table(self) -> pd.DataFrame:
        """The per-frame table: a row per frame per object."""
        self.flush()
        n, k = self.status.shape
        df = pd.DataFrame(
            {
                "frame": np.repeat(self.frames, k),
                "object": np.tile(self.object_ids, n),
                "status": self.status.reshape(-1),
            }
        )
        stats = self.stats.reshape(n * k, 8)
        for j, name in enumerate(COLUMNS[3:]):
            df[name] = stats[:, j]
        return df


def check_slots(frames: np.ndarray, status: np.ndarray) -> None:
    """One slot per frame and object, in frame order, each with one known status.

    Checked wherever slots are written, so a bookkeeping bug fails loudly instead of
    shifting or losing a frame.

    >>> check_slots(np.array([4, 5]), np.array([["ok"], ["empty"]]))
    >>> check_slots(np.array([4, 4]), np.array([["ok"], ["ok"]]))
    Traceback (most recent call last):
    ...
    RuntimeError: frames not strictly increasing at [4]
    """
    frames = np.asarray(frames)
    steps = np.diff(frames)
    if (steps <= 0).any():
        raise RuntimeError(
            f"frames not strictly increasing at {frames[1:][steps <= 0][:10].tolist()}"
        )
    if status.shape[0] != len(frames):
        raise RuntimeError(f"{status.shape[0]} status rows for {len(frames)} frames")
    unknown = ~np.isin(status.astype(str), FRAME_STATUSES)
    if unknown.any():
        rows = frames[unknown.any(axis=1)][:10].tolist()
        raise RuntimeError(f"frames without a result or a known status: {rows}")


def write_batch_outputs(out_dir: str | Path, store: MaskStore, record: dict) -> None:
    """Write ``masks.npz``, ``frames.csv`` and (last) ``memory.json``, each atomically."""
    store.flush()
    check_slots(store.frames, store.status)
    check_record(record)
    out = Path(out_dir)
    check_writable(out)
    with atomic_path(out / "masks.npz") as tmp:
        # As np.savez_compressed writes it, with the masks streamed from the store.
        shape = [len(store.frames), len(store.object_ids), store.height, store.width]
        arrays = {
            "frames": store.frames,
            "object_ids": store.object_ids,
            "masks": None,
            "shape": np.asarray(shape),
            "status": store.status.astype(str),
        }
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as npz:
            for name, array in arrays.items():
                with npz.open(f"{name}.npy", "w", force_zip64=True) as fp:
                    if array is None:
                        store.write_masks(fp)
                    else:
                        np.lib.format.write_array(fp, array, allow_pickle=False)
    with atomic_path(out / "frames.csv") as tmp:
        store.table().to_csv(tmp, index=False, float_format="%.6g")
    write_text(out / "memory.json", json.dumps(record, indent=1))


def load_masks(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every frame of a batch's ``masks.npz`` or a video's ``masks.h5``: frames, object
    ids and bool masks (frames x objects x H x W)."""
    return read_masks(path)


def _iter_npz(path: str | Path) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame, packed masks of its objects)`` of a batch's ``masks.npz``, in order, one
    frame at a time."""
    with zipfile.ZipFile(path) as zf:
        with zf.open("frames.npy") as f:
            frames = np.lib.format.read_array(f)
        with zf.open("masks.npy") as f:
            version = np.lib.format.read_magic(f)
            shape, fortran, dtype = (
                np.lib.format.read_array_header_1_0(f)
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0(f)
            )
            if fortran or dtype != np.uint8 or len(shape) != 3 or shape[0] != len(frames):
                raise UserError(f"masks array {shape} {dtype} is not sam2flow's", path)
            row = shape[1] * shape[2]
            for frame in frames:
                data = f.read(row)
                if len(data) != row:
                    raise UserError("masks archive is truncated", path, "segment it again")
                yield int(frame), np.frombuffer(data, np.uint8).reshape(shape[1], shape[2])


def read_masks(
    path: str | Path, frames: range | list[int] | None = None, objects: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The masks of some frames and objects: ``(frames, object ids, bool masks frames x
    objects x H x W)``, holding only what is asked for in memory.

    A video's ``masks.h5`` reads only the frames asked for (``maskfile``); a batch's
    ``masks.npz`` is read up to the last of them. ``frames``: global frame indices
    (default all); ``objects``: object ids (default all).
    """
    if Path(path).suffix == ".h5":
        return maskfile.read_masks(path, frames, objects)
    with zipfile.ZipFile(path) as zf:
        with zf.open("object_ids.npy") as f:
            ids = np.lib.format.read_array(f).tolist()
        with zf.open("shape.npy") as f:
            _, _, h, w = (int(v) for v in np.lib.format.read_array(f))
    cols = [ids.index(o) for o in objects] if objects is not None else list(range(len(ids)))
    wanted = None if frames is None else set(int(f) for f in frames)
    last = None if wanted is None else max(wanted, default=-1)
    got_frames, got = [], []
    for frame, packed in _iter_npz(path):
        if last is not None and frame > last:
            break
        if wanted is None or frame in wanted:
            bits = np.unpackbits(packed[cols], axis=-1, count=h * w)
            got_frames.append(frame)
            got.append(bits.reshape(len(cols), h, w).astype(bool))
    masks = np.stack(got) if got else np.zeros((0, len(cols), h, w), dtype=bool)
    return np.asarray(got_frames, dtype=np.int64), np.asarray(ids)[cols], masks


def check_one_video(batch_dirs: list[Path]) -> None:
    """Batches to merge must come from one video: their records name it (``video``), and
    a batch segmented from an extraction knows the video's content (``video_identity``),
    so two videos are told apart even where nobody named them."""
    for field in ("video", "video_identity"):
        seen = {}
        for d in batch_dirs:
            try:
                value = json.loads((d / "memory.json").read_text()).get(field)
            except (OSError, ValueError, AttributeError):
                continue  # a batch without a readable record: its masks still merge
            if value:
                seen.setdefault(value, d)
        if len(seen) > 1:
            (a, da), (b, db) = list(seen.items())[:2]
            what = f" ({a}) and {db} ({b})" if field == "video" else f" and {db} (other content)"
            raise UserError(
                f"batches of different videos: {da}{what}",
                db,
                "merge the batches of one video only",
            )


#: What a batch's ``masks.npz`` holds (``write_batch_outputs``).
NPZ_FIELDS = ("frames", "object_ids", "masks", "shape", "status")
#: Columns of ``frames.csv`` that the merge reads.
TABLE_COLUMNS = ("frame", "object", "status")


def read_batch_layout(d: Path) -> tuple[list[int], list[int], tuple[int, ...]]:
    """A batch's frames, object ids and shape, checked before anything is merged: every
    field present, frames consecutive and increasing, one status row a frame, and a
    ``frames.csv`` of the same frames. A damaged file is one line naming it."""
    npz, table = d / "masks.npz", d / "frames.csv"
    try:
        with np.load(npz) as data:
            missing = [k for k in NPZ_FIELDS if k not in data.files]
            if missing:
                raise ValueError(f"no {', '.join(missing)}")
            frames = [int(f) for f in data["frames"]]
            object_ids = [int(o) for o in data["object_ids"]]
            shape = tuple(int(v) for v in data["shape"])
            rows = data["status"].shape[0]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(
            f"cannot read batch masks ({brief(exc)})", npz, "segment that batch again"
        ) from exc
    if not frames or frames != list(range(frames[0], frames[0] + len(frames))):
        where = "no frames" if not frames else f"frames {frames[0]}..{frames[-1]} out of order"
        raise UserError(f"batch masks are damaged ({where})", npz, "segment that batch again")
    if rows != len(frames) or shape[:2] != (len(frames), len(object_ids)):
        raise UserError(
            f"batch masks are damaged ({rows} status rows, shape {list(shape)}, for "
            f"{len(frames)} frames of {len(object_ids)} objects)",
            npz,
            "segment that batch again",
        )
    try:
        columns = pd.read_csv(table, nrows=0).columns
        lacking = [c for c in TABLE_COLUMNS if c not in columns]
        if lacking:
            raise ValueError(f"no column {', '.join(lacking)}")
        listed = sorted(set(pd.read_csv(table, usecols=["frame"])["frame"].astype(int)))
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(
            f"cannot read the batch's frame table ({brief(exc)})",
            table,
            "segment that batch again",
        ) from exc
    if listed != frames:
        raise UserError(
            f"the batch's frame table lists other frames than its masks ({frames[0]}-{frames[-1]})",
            table,
            "segment that batch again",
        )
    return frames, object_ids, shape


def merge_video(batch_dirs: list[str | Path], out_dir: str | Path) -> pd.DataFrame:
    """Merge a video's batches into ``masks.h5`` (global order, ``maskfile``) and
    ``tracks.csv``.

    Returns the merged frame table. Batches are read one at a time for the masks.
    """
    metas, ids, ends = [], set(), {}
    for d in map(Path, batch_dirs):
        frames, object_ids, shape = read_batch_layout(d)
        metas.append((frames[0], d, shape))
        ids.update(object_ids)
        ends[d] = frames[-1]
    check_one_video([m[1] for m in metas])
    metas.sort()
    if metas[0][0] != 0:
        raise UserError(
            f"frames 0-{metas[0][0] - 1} are in no batch given (the first starts at frame "
            f"{metas[0][0]})",
            metas[0][1],
            "give every batch of the video, from its first",
        )
    for (_, d, _), (next_first, e, _) in zip(metas[:-1], metas[1:], strict=True):
        if next_first <= ends[d]:
            raise UserError(
                f"batches {d} and {e} overlap (frames {next_first}-{ends[d]})",
                e,
                "give each batch of one video once",
            )
        if next_first != ends[d] + 1:
            raise UserError(
                f"frames {ends[d] + 1}-{next_first - 1} are in no batch given (between {d} "
                f"and {e})",
                e,
                "give every batch of the video",
            )
    sizes = {m[2][2:]: m[1] for m in metas}
    if len(sizes) != 1:
        (a, da), (b, db) = list(sizes.items())[:2]
        raise UserError(
            f"batches {da} and {db} differ in frame size ({a[1]}x{a[0]} and {b[1]}x{b[0]})",
            db,
            "merge the batches of one video only",
        )
    # Batches may differ in objects (DLC individuals seen): slots for the union of ids;
    # an object absent from a batch is no_prompt there.
    object_ids = sorted(ids)
    h, w = metas[0][2][2:]
    nbytes = math.ceil(h * w / 8)
    out = Path(out_dir)
    check_writable(out)
    with atomic_path(out / "masks.h5") as tmp, MaskFileWriter(tmp, object_ids, h, w) as writer:
        frames, status = [], []
        for _, d, _ in metas:
            with np.load(d / "masks.npz") as data:
                packed, st = data["masks"], data["status"].astype(object)
                if data["object_ids"].tolist() != object_ids:  # slots for absent objects
                    padded = np.zeros((len(packed), len(object_ids), nbytes), np.uint8)
                    st = np.full((len(packed), len(object_ids)), NO_PROMPT, dtype=object)
                    for j, obj in enumerate(data["object_ids"]):
                        padded[:, object_ids.index(int(obj))] = packed[:, j]
                        st[:, object_ids.index(int(obj))] = data["status"][:, j]
                    packed = padded
                writer.append(data["frames"], packed, st)
                frames.append(data["frames"])
                status.append(st.astype(str))
        check_slots(np.concatenate(frames), np.concatenate(status))  # one slot per frame
    table = pd.concat([pd.read_csv(d / "frames.csv") for _, d, _ in metas], ignore_index=True)
    table = table.sort_values(["frame", "object"], kind="stable").reset_index(drop=True)
    with atomic_path(out / "tracks.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return table
