"""Sample sheet: the TSV of videos the workflow runs over, read once and checked.

A broken sheet is a one-line ``UserError`` naming the file, the row and the fix, before
Snakemake builds any job.
"""

from __future__ import annotations

import glob
import io
import logging
import re
from pathlib import Path

import pandas as pd

from .errors import UserError, brief

log = logging.getLogger(__name__)

COLUMNS = ("video", "path", "prompts", "points", "box", "mask", "prompt_frame")
REQUIRED = ("video", "path")


def read_sample_sheet(path: str | Path, schema_file: str | Path | None = None) -> pd.DataFrame:
    """The sheet as strings (empty cells ``""``), indexed by its unique ``video`` names.
    Optional columns the file leaves out are there, empty. ``schema_file``: each row must
    also fit this schema (the workflow's ``videos.schema.yaml``).

    >>> import tempfile; sheet = Path(tempfile.mkdtemp()) / "videos.tsv"
    >>> _ = sheet.write_text("video\\tpath\\nmouse1\\tm1.mp4\\n")
    >>> read_sample_sheet(sheet).loc["mouse1", ["path", "prompts"]].tolist()
    ['m1.mp4', '']
    """
    path = Path(path)
    if not path.is_file():
        raise UserError("sample sheet not found", path, "set 'videos' in the config to your TSV")
    try:
        numbered, lines = _table_lines(path)
        table = pd.read_csv(
            io.StringIO("".join(lines)), sep="\t", dtype=str, na_filter=False, comment=None
        )
    except (ValueError, pd.errors.ParserError) as exc:  # UnicodeDecodeError is a ValueError
        raise UserError(
            f"cannot read the sample sheet ({brief(exc)})", path, "save it as TSV (UTF-8)"
        ) from exc
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise UserError(
            f"sample sheet lacks column(s) {', '.join(missing)} (has {', '.join(table.columns)})",
            path,
            "the first line must name the columns, tab-separated: video, path, ...",
        )
    unknown = [c for c in table.columns if c not in COLUMNS]
    if unknown:
        raise UserError(
            f"unknown column(s) {', '.join(unknown)} in the sample sheet",
            path,
            f"use only {', '.join(COLUMNS)}",
        )
    if table.empty:
        raise UserError(
            "the sample sheet lists no videos",
            path,
            "add a row per video under the header: NAME<TAB>VIDEO PATH (sam2flow init writes one)",
        )
    for column in table.columns:
        stripped = table[column].str.strip()
        for line in (stripped != table[column]).to_numpy().nonzero()[0]:
            log.warning(
                "%s: row %d, column %s: spaces around %r ignored",
                path,
                numbered[line],
                column,
                table[column].iloc[line],
            )
        table[column] = stripped
    for line, name, video in zip(numbered, table["video"], table["path"], strict=True):
        if not name or not video:
            raise UserError(
                f"row {line} has an empty video name or path", path, "fill in both columns"
            )
    repeated = table["video"][table["video"].duplicated()].tolist()
    if repeated:
        raise UserError(
            f"video name {repeated[0]!r} appears more than once",
            path,
            "give each video a unique name",
        )
    for column in COLUMNS:
        table[column] = table.get(column, "")
    _check_prompts(table, numbered, path)
    table = table[list(COLUMNS)]
    if schema_file is not None:
        from .plan.schema import check_sheet_rows

        check_sheet_rows(table.to_dict("records"), schema_file, path, numbered)
    return table.set_index("video", drop=False)


def _table_lines(path: Path) -> tuple[list[int], list[str]]:
    """The sheet's header and rows as pandas should read them, and each row's line number
    in the file (what an error names, whatever comments and empty lines come before).
    A comment is a whole line starting with '#' (a '#' inside a path is the path's).
    Empty cells after the last named column (a tab left at a line's end) are dropped: an
    extra cell with text in it is an error, not a shift of every column."""
    numbered, lines, width = [], [], None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line or line.lstrip().startswith("#"):
            continue
        cells = line.split("\t")
        if width is None:  # the header line
            while len(cells) > 1 and not cells[-1].strip():
                cells.pop()
            width = len(cells)
        elif any(cell.strip() for cell in cells[width:]):
            raise UserError(
                f"row {number} has {len(cells)} cells but the header line names {width} columns",
                path,
                "remove the extra cells, or name their column in the header line",
            )
        else:
            numbered.append(number)
        lines.append("\t".join(cells[:width]) + "\n")
    return numbered, lines


def _check_prompts(table: pd.DataFrame, numbered: list[int], path: Path) -> None:
    """Clicks and boxes parse as the segmentation will parse them (the schema's patterns
    let ``.,.`` and an inverted box through), so a bad cell fails the plan, naming its
    row, not a batch job hours later. A row prompts from a DeepLabCut file or by hand,
    not both (as on the command line): a click beside a DeepLabCut file went unused."""
    from .prompts import parse_box, parse_points

    manual = ["points", "box", "mask", "prompt_frame"]
    for line, (_, row) in zip(numbered, table.iterrows(), strict=True):
        given = [column for column in manual if row[column]]
        if row["prompts"] and given:
            raise UserError(
                f"row {line} has a DeepLabCut file (prompts) and {', '.join(given)}",
                path,
                "keep one: the DeepLabCut file prompts every batch; points, box and mask "
                "prompt the batch of prompt_frame",
            )
        for column, parse in (("points", parse_points), ("box", parse_box)):
            text = row[column]
            if not text:
                continue
            try:
                parse(text)
            except ValueError as exc:
                why = brief(exc) if repr(text) in str(exc) else f"{text!r}: {brief(exc)}"
                raise UserError(
                    f"row {line}, column {column}: {why}", path, "fix that cell"
                ) from None


#: Video file types ``sam2flow init`` picks up from a folder.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv")


def find_videos(inputs: list[str | Path]) -> list[Path]:
    """Video files among ``inputs``: files, folders (their videos) or glob patterns."""
    found: list[Path] = []
    for item in map(str, inputs):
        path = Path(item)
        if path.is_dir():
            found += sorted(  # a folder named like a video is not one
                p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
            )
        elif path.is_file():
            found.append(path)
        else:
            matches = sorted(map(Path, glob.glob(item)))
            if not matches:
                raise UserError("no such video, folder or pattern", item, "check the path")
            found += [p for p in matches if p.is_file()]
    return list(dict.fromkeys(p.resolve() for p in found))


def dlc_match(video: Path, candidates: list[Path]) -> tuple[Path | None, list[Path]]:
    """The DeepLabCut output for ``video`` (DeepLabCut names it ``<video stem>DLC_...``),
    and the other candidates passed over. CSV is preferred (no PyTables needed), then a
    ``_filtered`` file (DeepLabCut's smoothed predictions), then the newest.

    >>> files = [Path("m3v1mp4DLC_resnet50_x_1.h5"), Path("m3v1mp4DLC_resnet50_x_1.csv")]
    >>> dlc_match(Path("m3v1mp4.mp4"), files)[0].name
    'm3v1mp4DLC_resnet50_x_1.csv'
    >>> dlc_match(Path("bedroom.mp4"), files)
    (None, [])
    """
    mine = [
        p
        for p in candidates
        if p.name.startswith(f"{video.stem}DLC_") and p.suffix.lower() in (".csv", ".h5")
    ]
    if not mine:
        return None, []

    def rank(p: Path):
        mtime = p.stat().st_mtime if p.exists() else 0.0
        return (p.suffix.lower() == ".csv", "_filtered" in p.stem, mtime)

    mine.sort(key=rank, reverse=True)
    return mine[0], mine[1:]


def _drawn_by_dlc(video: Path, videos: list[Path]) -> Path | None:
    """The video of ``videos`` that DeepLabCut drew ``video`` for: its labelled videos are
    named ``<video stem>DLC_<scorer>..._labeled.mp4`` and written beside the video, so a
    folder of videos holds both (segmenting the drawing would double the work)."""
    return next((o for o in videos if o != video and video.name.startswith(f"{o.stem}DLC_")), None)


def video_name(path: Path, taken: set[str]) -> str:
    """A sample-sheet name for ``path`` (letters, digits, ``_ . -``), unique in ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).lstrip("_.-") or "video"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def sheet_for(videos: list[Path], dlc_files: list[Path]) -> tuple[pd.DataFrame, list[str]]:
    """Sample-sheet rows for ``videos`` with their DeepLabCut files, and warnings: videos
    without one, files without a video, and files passed over."""
    rows, notes, used, taken = [], [], set(), set()
    for video in videos:
        drawn_for = _drawn_by_dlc(video, videos)
        if drawn_for is not None:
            notes.append(
                f"{video.name}: a video DeepLabCut drew for {drawn_for.name} "
                "(create_labeled_video), left out; add its row by hand to segment it"
            )
            continue
        chosen, others = dlc_match(video, dlc_files)
        used.update([chosen, *others])
        rows.append({"video": video_name(video, taken), "path": str(video), "prompts": ""})
        if chosen is None:
            notes.append(
                f"{video.name}: no DeepLabCut file named {video.stem}DLC_*.csv/.h5; its batches "
                "stay no_prompt until you give points, a box or a mask in the sheet"
            )
            continue
        rows[-1]["prompts"] = str(chosen)
        others = [o for o in others if o.stem != chosen.stem]  # not its .h5/.csv twin
        if others:
            notes.append(
                f"{video.name}: using {chosen.name}, not {', '.join(o.name for o in others)}"
            )
    for extra in sorted(set(dlc_files) - used):
        notes.append(f"{extra.name}: a DeepLabCut file without a matching video")
    # Every column, empty where init has nothing to say: the user fills in clicks, boxes,
    # masks and their frame in the header's place rather than guessing the names.
    table = [{column: row.get(column, "") for column in COLUMNS} for row in rows]
    return pd.DataFrame(table, columns=list(COLUMNS)), notes
