"""Prompts: where SAM 2 is told what to segment, from DeepLabCut files or from the config.

DeepLabCut prediction files (CSV with 3 header rows, or 4 for multi-animal projects, and
``.h5``) and label files (``CollectedData_*``, x/y without likelihood) become keypoints per
frame, individual and bodypart; a batch is prompted on its frame with the most usable points.
Points, boxes and a mask PNG from the config prompt one object on one frame.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import math
import re
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from .errors import BadValue, UserError, brief
from .vocabulary import DEFAULT_CUTOFF, EMPTY, OK, SKIPPED_OOM

log = logging.getLogger(__name__)


@dataclass
class ObjectPrompt:
    """What SAM 2 gets for one object on the prompt frame (video pixel coordinates)."""

    points: np.ndarray | None = None  # K x 2 float32 (x, y)
    labels: np.ndarray | None = None  # K int32 (1 positive, 0 negative)
    box: np.ndarray | None = None  # 4 float32 (x0, y0, x1, y1)
    mask: np.ndarray | None = None  # H x W bool


@dataclass
class BatchPrompt:
    """The prompt of one batch: a global frame index and one prompt per object id.

    A carried prompt (``carry``) lies on the previous batch's last frame, outside the batch:
    ``image`` is that frame's JPEG, so the batch starts exactly where the previous one ended.
    ``missing`` says why a batch that should have been carried has no prompt.
    ``anchors``: other frames of the batch with a prompt of their own (DeepLabCut), where
    the memory guard starts again after frames it had to skip.
    """

    frame: int
    objects: dict[int, ObjectPrompt] = field(default_factory=dict)
    source: str = ""
    image: Path | None = None
    missing: str | None = None
    anchors: dict[int, dict[int, ObjectPrompt]] = field(default_factory=dict)


@dataclass
class Keypoints:
    """DeepLabCut keypoints: ``xyl`` is frames x individuals x bodyparts x (x, y, likelihood),
    float32 (a long video's keypoints in half the memory of float64)."""

    path: str
    frames: np.ndarray  # global frame index of each row
    individuals: list[str]
    bodyparts: list[str]
    xyl: np.ndarray
    is_label_file: bool

    def select(self, bodyparts: list[str] | None) -> Keypoints:
        """Keep only ``bodyparts`` (all when empty); an unknown name is a ``UserError``."""
        if not bodyparts:
            return self
        unknown = [b for b in bodyparts if b not in self.bodyparts]
        if unknown:
            raise UserError(
                f"unknown bodypart(s) {', '.join(unknown)} (line 3 of the header lists "
                f"{', '.join(self.bodyparts)})",
                self.path,
                "fix 'bodyparts' in the config",
            )
        idx = [self.bodyparts.index(b) for b in bodyparts]
        return Keypoints(
            self.path,
            self.frames,
            self.individuals,
            list(bodyparts),
            self.xyl[:, :, idx],
            self.is_label_file,
        )


def _frame_from_label(value) -> int | None:
    """Frame number of a label-file row (``labeled-data/m4s1/img0042.png`` -> 42); ``None``
    for a negative row number (damage, not frame 1)."""
    text = "/".join(map(str, value)) if isinstance(value, tuple) else str(value)
    if text.isdigit():
        return int(text)
    if text.startswith("-"):
        return None
    digits = re.findall(r"(\d+)", Path(text).stem)
    return int(digits[-1]) if digits else None


SPREADSHEET_FIX = (
    "give the file as DeepLabCut wrote it (a spreadsheet program that saves it again may "
    "change its separators, decimal marks and encoding)"
)


def _header(path: Path) -> list[list[str]]:
    """The header lines, parsed once: 3 for single-animal files, 4 when the second is
    ``individuals``. A file saved again by a spreadsheet program is read while it is still
    comma-separated UTF-8 (a byte-order mark, quoted cells); UTF-16 and other separators
    are named."""
    with open(path, "rb") as f:
        if f.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            raise UserError(
                "the file is UTF-16 text (a spreadsheet's 'Unicode Text'), not a CSV",
                path,
                SPREADSHEET_FIX,
            )
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
            lines = [next(csv.reader([f.readline()]), []) for _ in range(4)]
    except csv.Error as exc:  # a cell past csv's field size limit, say
        raise UserError(f"cannot parse CSV ({brief(exc)})", path, "export it again") from exc
    head = [cells[0].strip() if cells else "" for cells in lines]
    if head[0] != "scorer":
        for separator, name in ((";", "semicolons"), ("\t", "tabs")):
            if head[0].startswith("scorer" + separator):
                raise UserError(
                    f"cells are separated by {name}, not commas: not a DeepLabCut CSV",
                    path,
                    SPREADSHEET_FIX,
                )
        raise UserError(
            f"line 1 starts with {head[0]!r}, not 'scorer': not a DeepLabCut CSV",
            path,
            "give a DeepLabCut prediction or label file (3 or 4 header rows)",
        )
    if head[1] == "individuals":
        return lines
    if head[1] == "bodyparts" and head[2] == "coords":
        return lines[:3]
    raise UserError(
        f"unexpected header rows {head[:3]}: expected scorer/bodyparts/coords "
        "or scorer/individuals/bodyparts/coords",
        path,
        "export the file again from DeepLabCut",
    )


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in (".h5", ".hdf5"):
        try:
            import tables  # noqa: F401
        except ImportError:
            raise UserError(
                "reading .h5 files needs PyTables",
                path,
                "pip install 'sam2flow[h5]' (or give the CSV export)",
            ) from None
        try:
            with pd.HDFStore(path, mode="r") as store:
                keys = store.keys()
                if not keys:
                    raise UserError(
                        "no table in this HDF5 file (another tool's file, such as SLEAP's?)",
                        path,
                        "give the .h5 (or .csv) DeepLabCut wrote for this video",
                    )
                key = "df_with_missing" if "/df_with_missing" in keys else keys[0]
                return store[key]
        except UserError:
            raise
        except Exception as exc:
            raise UserError(
                f"cannot read HDF5 table ({brief(exc)})", path, "export it again"
            ) from exc
    if path.suffix.lower() != ".csv":
        raise UserError("unknown prompt file type", path, "give a DeepLabCut .csv or .h5 file")
    header = _header(path)
    rows = len(header)
    try:
        # Newer label files put the image path in 3 index columns (``scorer,,,Pranav``).
        index_cols = 1 + next((i for i, v in enumerate(header[0][1:]) if v), 0)
        # The header is parsed here, not by pandas: with a multi-row header, pandas takes a
        # first data row with every value empty (no animal found on frame 0) for a row of
        # index names and drops it, shifting every frame after it.
        table = pd.read_csv(path, header=None, skiprows=rows, index_col=list(range(index_cols)))
        table.columns = pd.MultiIndex.from_arrays(
            [line[index_cols:] for line in header], names=[line[0] for line in header]
        )
    except Exception as exc:
        raise UserError(f"cannot parse CSV ({brief(exc)})", path, "export it again") from exc
    return _without_unnamed(table, path, rows)


def _without_unnamed(table: pd.DataFrame, path: Path, rows: int) -> pd.DataFrame:
    """Drops empty columns the header lines name no bodypart or coordinate for (the
    trailing commas a spreadsheet program may add); such a column with values in it is an
    error, not an unnamed bodypart or values read as nothing."""
    unnamed = [not (column[-2] and column[-1]) for column in table.columns]
    filled = table.loc[:, unnamed].notna().to_numpy().nonzero()
    if filled[0].size:
        row, col = filled[0][0], np.flatnonzero(unnamed)[filled[1][0]]
        raise UserError(
            f"line {rows + 1 + row}, cell {col + 1 + table.index.nlevels}: a value in a column "
            "the header lines name no bodypart or coordinate for",
            path,
            SPREADSHEET_FIX,
        )
    return table.loc[:, [not u for u in unnamed]]


def read_dlc(path: str | Path) -> Keypoints:
    """Read a DeepLabCut prediction or label file (CSV or ``.h5``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            "prompt file not found", path, "check the 'prompts' column of the sample sheet"
        )
    table = _read_table(path)
    names = [n or "" for n in table.columns.names]
    levels = {name: i for i, name in enumerate(names)}
    if "bodyparts" not in levels or "coords" not in levels:
        raise UserError(
            f"columns have levels {names}, expected bodyparts and coords",
            path,
            "export the file again from DeepLabCut",
        )
    cols = table.columns
    individuals = (
        list(dict.fromkeys(cols.get_level_values("individuals")))
        if "individuals" in levels
        else ["single"]
    )
    bodyparts = list(dict.fromkeys(cols.get_level_values("bodyparts")))
    coords = set(cols.get_level_values("coords"))
    if not {"x", "y"} <= coords:
        lacking = " and ".join(sorted({"x", "y"} - coords))
        raise UserError(
            f"coords (header line {len(cols.levels)}) lack {lacking}",
            path,
            "export the file again from DeepLabCut (coords x, y and likelihood)",
        )
    if "z" in coords:
        raise UserError(
            "coords include z: a 3D (triangulated) file, not one camera's predictions",
            path,
            "give the 2D DeepLabCut file of this video (x, y and likelihood)",
        )
    has_likelihood = "likelihood" in coords
    values = table.apply(pd.to_numeric, errors="coerce")
    _check_numbers(table, values, path, len(cols.levels) + 1)
    xyl = np.full((len(table), len(individuals), len(bodyparts), 3), np.nan, dtype=np.float32)
    for col in cols:
        ind = individuals.index(col[levels["individuals"]]) if "individuals" in levels else 0
        bp = bodyparts.index(col[levels["bodyparts"]])
        coord = {"x": 0, "y": 1, "likelihood": 2}.get(col[levels["coords"]])
        if coord is not None:
            xyl[:, ind, bp, coord] = values[col].to_numpy(dtype=np.float32)
    if not has_likelihood:  # label files: a labelled point is certain
        xyl[..., 2] = np.where(np.isnan(xyl[..., 0]) | np.isnan(xyl[..., 1]), 0.0, 1.0)
    frames = []
    for line, value in enumerate(table.index, start=len(cols.levels) + 1):
        frame = _frame_from_label(value)
        if frame is None:
            raise UserError(
                f"line {line}: cannot read a frame number from {value!r}",
                path,
                "rows must be frame numbers or image names with a number",
            )
        frames.append(frame)
    first_line = dict.fromkeys(frames)
    for line, frame in enumerate(frames, start=len(cols.levels) + 1):
        if first_line[frame] is not None:
            raise UserError(
                f"lines {first_line[frame]} and {line} are both frame {frame}",
                path,
                "give one row per frame (a file made by DeepLabCut for one video)",
            )
        first_line[frame] = line
    is_label = not has_likelihood
    return Keypoints(str(path), np.asarray(frames), individuals, bodyparts, xyl, is_label)


def _check_numbers(table: pd.DataFrame, values: pd.DataFrame, path: Path, first_line: int):
    """A cell that holds text where a number goes is an error, not a missing point (an
    empty cell, or NaN, is DeepLabCut's way to say a point is missing)."""
    raw = table.astype(str).apply(lambda c: c.str.strip().str.lower())
    bad = values.isna() & table.notna() & ~raw.isin(["", "nan"])
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        column = " ".join(str(v) for v in table.columns[col] if v)
        raise UserError(
            f"line {first_line + row}: {table.iat[row, col]!r} is not a number ({column})",
            path,
            "export the file again from DeepLabCut",
        )


def check_frame_count(keypoints: Keypoints, video_frames: int) -> None:
    """Every row must be a frame of the video; a prediction file must have one row per
    video frame (label files are sparse)."""
    beyond = keypoints.frames[keypoints.frames >= video_frames]
    if len(beyond):
        raise UserError(
            f"rows name frames up to {int(keypoints.frames.max())} but the video has "
            f"{video_frames} frames (0-{video_frames - 1})",
            keypoints.path,
            "give the file made from this video",
        )
    if keypoints.is_label_file:
        return
    if len(keypoints.frames) != video_frames:
        raise UserError(
            f"has {len(keypoints.frames)} frame rows but the video has {video_frames} frames",
            keypoints.path,
            "give the prediction file made from this video",
        )


def dlc_batch_prompt(
    keypoints: Keypoints,
    frames: list[int],
    cutoff: float = DEFAULT_CUTOFF,
    scale: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
) -> BatchPrompt | None:
    """Prompt a batch on its frame with the most usable points (ties: highest mean likelihood).

    One object per individual (ids 1, 2, ...); points below ``cutoff`` or NaN are dropped.
    ``None`` when no frame of the batch has a usable point.
    """
    wanted = np.isin(keypoints.frames, np.asarray(frames))
    rows = np.flatnonzero(wanted)
    if rows.size == 0:
        return None
    xyl = keypoints.xyl[rows]
    usable = (xyl[..., 2] >= cutoff) & np.isfinite(xyl[..., 0]) & np.isfinite(xyl[..., 1])
    counts = usable.reshape(len(rows), -1).sum(axis=1)
    if counts.max() == 0:
        return None
    lik = np.where(usable, xyl[..., 2], 0).reshape(len(rows), -1).sum(axis=1) / np.maximum(
        counts, 1
    )
    best = max(range(len(rows)), key=lambda r: (counts[r], lik[r], -r))

    def objects_on(r: int) -> dict[int, ObjectPrompt]:
        objects = {}
        for ind in range(len(keypoints.individuals)):
            ok = usable[r, ind]
            if ok.any():
                pts = xyl[r, ind, ok, :2] * scale + np.asarray(offset, dtype=np.float32)
                objects[ind + 1] = ObjectPrompt(
                    points=pts.astype(np.float32), labels=np.ones(len(pts), dtype=np.int32)
                )
        return objects

    prompt = BatchPrompt(
        frame=int(keypoints.frames[rows[best]]), objects=objects_on(best), source=keypoints.path
    )
    needed = [obj - 1 for obj in prompt.objects]
    for r in np.flatnonzero(counts):  # frames that can prompt every object of the batch
        if r != best and usable[r, needed].any(axis=-1).all():
            prompt.anchors[int(keypoints.frames[rows[r]])] = objects_on(r)
    return prompt


def _commas(text: str) -> str:
    """``"210, 350"`` as ``"210,350"``: spaces around a comma, as a tool prints
    coordinates, are not a separator."""
    return re.sub(r"\s*,\s*", ",", text.strip())


def parse_points(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``"210,350;300,400,0"`` -> points and labels (label defaults to 1, positive).

    >>> parse_points("210, 350; 300 ,400,0")[0].tolist()
    [[210.0, 350.0], [300.0, 400.0]]
    """
    pts, labels = [], []
    if any(word in text.lower() for word in ("nan", "inf")):
        raise BadValue(f"points {text!r} must be finite numbers")
    for item in re.split(r"[;\s]+", _commas(text)):
        if not item:
            continue
        parts = item.split(",")
        if len(parts) not in (2, 3):
            raise BadValue(f"point {item!r} must be X,Y or X,Y,LABEL")
        try:
            pts.append([float(parts[0]), float(parts[1])])
            labels.append(int(parts[2]) if len(parts) == 3 else 1)
        except ValueError:
            raise BadValue(
                f"point {item!r} must be X,Y or X,Y,LABEL: numbers, and a label of 1 or 0"
            ) from None
        if labels[-1] not in (0, 1):
            raise BadValue(f"point {item!r}: label must be 1 (object) or 0 (background)")
    if not pts:
        raise BadValue(f"no points in {text!r}")
    return np.asarray(pts, dtype=np.float32), np.asarray(labels, dtype=np.int32)


def finite_numbers(text: str) -> list[float] | None:
    """Comma-separated numbers, or ``None`` when one is not a finite number (a box, an
    offset).

    >>> finite_numbers(" -12.5, 3"), finite_numbers("1,nan"), finite_numbers("1,,2")
    ([-12.5, 3.0], None, None)
    """
    try:
        numbers = [float(v) for v in text.split(",")]
    except ValueError:
        return None
    return numbers if all(math.isfinite(v) for v in numbers) else None


def parse_box(text: str) -> np.ndarray:
    """``"x0,y0,x1,y1"`` -> a box array."""
    parts = finite_numbers(text) or []
    if len(parts) != 4 or parts[2] <= parts[0] or parts[3] <= parts[1]:
        raise BadValue(f"box {text!r} must be X0,Y0,X1,Y1 with X1 > X0 and Y1 > Y0")
    return np.asarray(parts, dtype=np.float32)


def read_mask_png(path: str | Path) -> np.ndarray:
    """A mask PNG as a bool array: its non-zero pixels, at the file's own bit depth (a
    16-bit label image's 1 is the object; read as 8 bits it became 0), or, where the
    image has transparency, its opaque pixels (an object drawn on a transparent
    background, whose colour there may be white)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise UserError("cannot read mask image", path, "give a PNG with the object non-zero")
    if img.ndim == 2:
        mask = img != 0
    elif img.shape[2] in (2, 4) and img[..., -1].min() < img[..., -1].max():
        mask = img[..., -1] != 0
    else:  # the colour channels: an opaque alpha channel is not the object
        mask = img[..., : 3 if img.shape[2] >= 3 else 1].any(axis=-1)
    share = mask.mean()  # exactly 0 or 1 where no pixel or every pixel is the object
    if share == 0:
        raise UserError("mask image is empty", path, "give a PNG with the object non-zero")
    if share == 1:
        raise UserError(
            "mask image has no background (every pixel is non-zero)",
            path,
            "give the object non-zero on a black (0) or transparent background; "
            "a dark object on white is read inverted: invert the image",
        )
    if share > 0.5:  # a dark object drawn on white, or a video frame saved as PNG
        log.warning(
            "%s: the mask covers %.0f %% of the frame; the object is its non-zero pixels, "
            "so a dark object on a white background is read inverted (invert the image)",
            path,
            100 * share,
        )
    return mask


def check_carried(
    prompt: BatchPrompt, height: int, width: int, masks_npz: str | Path, identity: str | None
) -> None:
    """Carried masks must be of this batch's video: its frame size, and (where both
    records say) its content."""
    for obj in prompt.objects.values():
        h, w = obj.mask.shape
        if (h, w) != (height, width):
            raise UserError(
                f"carried masks are {w}x{h} but this batch's frames are {width}x{height}",
                masks_npz,
                "carry from the previous batch of the same video",
            )
    if identity:
        try:
            record = json.loads((Path(masks_npz).parent / "memory.json").read_text())
        except (OSError, ValueError):
            return  # no record beside the masks: nothing more to compare
        theirs = record.get("video_identity") if isinstance(record, dict) else None
        if theirs and theirs != identity:
            raise UserError(
                "carried masks come from another video (its record names other content)",
                masks_npz,
                "carry from the previous batch of the same video",
            )


def manual_prompt(
    frame: int,
    points: str | None = None,
    box: str | None = None,
    mask: str | Path | None = None,
) -> BatchPrompt:
    """One object (id 1) prompted on ``frame`` by points, a box and/or a mask PNG."""
    obj = ObjectPrompt()
    if points:
        obj.points, obj.labels = parse_points(points)
    if box:
        obj.box = parse_box(box)
    if mask:
        obj.mask = read_mask_png(mask)
    if obj.points is None and obj.box is None and obj.mask is None:
        raise BadValue("a manual prompt needs points, a box or a mask")
    return BatchPrompt(frame=int(frame), objects={1: obj}, source="config")


def check_prompt_frame(
    frame: int, video_frames: int | None, where: str | Path | None = None
) -> None:
    """A prompt frame must be one the video has (``video_frames``: its length, if known)."""
    if frame < 0 or (video_frames is not None and frame >= video_frames):
        last = f"0-{video_frames - 1}" if video_frames else "0 or more"
        raise UserError(
            f"prompt frame {frame} is outside the video (frames {last})",
            where,
            "fix prompt_frame (--prompt-frame)",
        )


def check_prompt(
    prompt: BatchPrompt | None, height: int, width: int, video_frames: int | None
) -> None:
    """A prompt must lie in the video and in the frame: a click off the frame or on a frame
    the video does not have would otherwise end as a batch of silent ``no_prompt`` frames.
    """
    if prompt is None:
        return
    where = prompt.source if prompt.source not in ("", "config") else None
    check_prompt_frame(prompt.frame, video_frames, where)
    for frame, objects in [(prompt.frame, prompt.objects), *prompt.anchors.items()]:
        for obj, op in objects.items():
            _check_object(obj, op, frame, height, width, where)


def _check_object(
    obj: int, op: ObjectPrompt, frame: int, height: int, width: int, where: str | None
) -> None:
    coords = []
    if op.points is not None:
        coords += [("point", x, y) for x, y in op.points]
    if op.box is not None:
        coords += [("box corner", op.box[0], op.box[1]), ("box corner", op.box[2], op.box[3])]
    for what, x, y in coords:
        if not (np.isfinite(x) and np.isfinite(y) and 0 <= x <= width and 0 <= y <= height):
            raise UserError(
                f"object {obj}: {what} ({x:g}, {y:g}) on frame {frame} is outside "
                f"the {width}x{height} frame",
                where,
                "give video pixel coordinates (DeepLabCut: check prompts.scale and offset)",
            )
    if op.mask is not None and op.mask.shape != (height, width):
        raise UserError(
            f"mask is {op.mask.shape[1]}x{op.mask.shape[0]}, the frames {width}x{height}",
            where,
            "give a mask PNG the size of the video's frames",
        )


def prompt_in_batch(prompt: BatchPrompt | None, frames: list[int]) -> BatchPrompt | None:
    """The prompt if its frame lies in this batch, else ``None`` (the batch has no prompt)."""
    if prompt is None or prompt.frame not in set(frames):
        return None
    return prompt


@dataclass(frozen=True)
class PromptOptions:
    """Where a batch's prompt comes from, read once into one type: from the config and a
    sample-sheet row (``from_config``) or from ``sam2flow segment``'s options
    (``from_args``). The fields up to ``offset`` are what the workflow's job is given
    (``job_params``): a change to them reruns its batches."""

    prompts_file: str | None = None  # a DeepLabCut file (.csv/.h5)
    points: str | None = None  # "x,y[,label];..." in video pixels
    box: str | None = None  # "x0,y0,x1,y1"
    mask: str | None = None  # a mask PNG
    prompt_frame: int | None = None  # the frame of points/box/mask (None: the batch's first)
    bodyparts: list[str] = field(default_factory=list)  # DeepLabCut bodyparts (empty: all)
    cutoff: float = DEFAULT_CUTOFF
    scale: float = 1.0  # DeepLabCut coordinates to video pixels: x * scale + offset
    offset: tuple[float, float] = (0.0, 0.0)
    video_frames: int | None = None  # the video's length, to check the DeepLabCut file
    carry_from: str | None = None  # the previous batch's masks.npz
    carry_image: str | None = None  # the JPEG of the frame those masks belong to

    @classmethod
    def from_config(cls, row: dict, prompts: dict) -> PromptOptions:
        """A sheet row's prompt with config ``prompts:``; a click, box or mask lies on
        ``prompt_frame``, frame 0 when the sheet leaves it empty.

        >>> PromptOptions.from_config({"points": "5,5"}, {"bodyparts": [],
        ...     "likelihood_cutoff": 0.6, "scale": 1.0, "offset": [0, 0]}).prompt_frame
        0
        """
        frame = row.get("prompt_frame", "")
        return cls(
            prompts_file=row.get("prompts") or None,
            points=row.get("points") or None,
            box=row.get("box") or None,
            mask=row.get("mask") or None,
            prompt_frame=int(frame) if str(frame).strip() else 0,
            bodyparts=list(prompts["bodyparts"]),
            cutoff=prompts["likelihood_cutoff"],
            scale=prompts["scale"],
            offset=tuple(prompts["offset"]),
        )

    @classmethod
    def from_args(cls, args) -> PromptOptions:
        """From ``sam2flow segment``'s options (``--prompts``, ``--point``, ...)."""
        return cls(
            prompts_file=args.prompts,
            points=";".join(args.point) if args.point else None,
            box=args.box,
            mask=args.mask,
            prompt_frame=args.prompt_frame,
            bodyparts=[b for b in args.bodyparts.split(",") if b],
            cutoff=args.likelihood_cutoff,
            scale=args.scale,
            offset=tuple(args.offset),
            video_frames=args.video_frames,
            carry_from=args.carry_from,
            carry_image=args.carry_image,
        )

    def job_params(self) -> dict:
        """What a workflow job is given: the sheet's and the config's part.

        >>> list(PromptOptions().job_params())[-1]
        'offset'
        """
        names = [f.name for f in fields(self)]
        return {name: getattr(self, name) for name in names[: names.index("offset") + 1]}


def prompt_for_batch(frames: list[int], options: PromptOptions) -> BatchPrompt | None:
    """The prompt of a batch from a DeepLabCut file or from manual points / box / mask;
    failing those, from the previous batch's last masks (``carry_from``, with
    ``carry_image`` the JPEG of the frame they belong to).

    ``None`` when the batch has no usable prompt (its frames become ``no_prompt``).
    """
    o, own = options, None
    if o.prompts_file:
        keypoints = read_dlc(o.prompts_file).select(o.bodyparts)
        if o.video_frames is not None:
            check_frame_count(keypoints, o.video_frames)
        own = dlc_batch_prompt(keypoints, frames, o.cutoff, o.scale, o.offset)
    elif o.points or o.box or o.mask:
        frame = frames[0] if o.prompt_frame is None else int(o.prompt_frame)
        own = prompt_in_batch(manual_prompt(frame, o.points, o.box, o.mask), frames)
    if own is None and o.carry_from:
        return carried_prompt(o.carry_from, frames[0], o.carry_image)
    return own


#: Frame statuses whose mask is a result (possibly empty) that a next batch can start from.
CARRIABLE = (OK, EMPTY)


def carried_prompt(
    masks_npz: str | Path, first_frame: int, image: str | Path | None
) -> BatchPrompt | None:
    """Batch carry-over: the previous batch's last masks, on the frame they belong to.

    The prompt lies on ``first_frame - 1`` (``image`` is its JPEG): the batch adds the masks
    there and propagates into its own frames, exactly as a chunk continues from the chunk
    before it. Every segmented object is carried, an empty mask too (the object is lost,
    and its frames are ``empty``). ``None`` when the previous batch had no prompt either;
    when its last frame was skipped, the prompt has no objects and ``missing`` says why.
    """
    frame, object_ids, masks, status = last_masks(masks_npz)
    if frame != first_frame - 1:
        raise UserError(
            f"previous batch ends on frame {frame}, not {first_frame - 1}",
            masks_npz,
            "rerun the previous batch (carry: chained needs batches in order)",
        )
    if image is None:
        raise UserError(
            f"the JPEG of frame {frame} (where the carried masks belong) is needed",
            masks_npz,
            "give --carry-image, or segment a folder made by 'sam2flow extract'",
        )
    prompt = BatchPrompt(frame=frame, source=f"carried from {masks_npz}", image=Path(image))
    if SKIPPED_OOM in status:
        prompt.missing = f"the previous batch's last frame {frame} was skipped (out of memory)"
        return prompt
    for k, obj in enumerate(object_ids):
        if status[k] in CARRIABLE:
            prompt.objects[int(obj)] = ObjectPrompt(mask=masks[k])
    return prompt if prompt.objects else None


def last_masks(masks_npz: str | Path) -> tuple[int, list[int], np.ndarray, list[str]]:
    """The last frame of a batch's ``masks.npz``: its index, object ids, bool masks
    (objects x H x W) and statuses, without unpacking the other frames."""
    try:
        with np.load(masks_npz) as data:
            n, k, h, w = (int(v) for v in data["shape"])
            frame = int(data["frames"][-1])
            bits = np.unpackbits(data["masks"][-1], axis=-1, count=h * w)
            return (
                frame,
                [int(o) for o in data["object_ids"]],
                bits.reshape(k, h, w).astype(bool),
                [str(s) for s in data["status"][-1]],
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise UserError(
            f"cannot read the carried masks ({brief(exc)})", masks_npz, "rerun the previous batch"
        ) from exc
