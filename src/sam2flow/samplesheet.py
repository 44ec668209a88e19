"""Sample sheet: the TSV of videos the workflow runs over, read once and checked.

A broken sheet is a one-line ``UserError`` naming the file, the row and the fix, before
Snakemake builds any job.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import UserError

COLUMNS = ("video", "path", "prompts", "points", "box", "mask", "prompt_frame")
REQUIRED = ("video", "path")


def read_sample_sheet(path: str | Path) -> pd.DataFrame:
    """The sheet as strings (empty cells ``""``), indexed by its unique ``video`` names.

    >>> import tempfile; sheet = Path(tempfile.mkdtemp()) / "videos.tsv"
    >>> _ = sheet.write_text("video\\tpath\\nmouse1\\tm1.mp4\\n")
    >>> read_sample_sheet(sheet).loc["mouse1", "path"]
    'm1.mp4'
    """
    path = Path(path)
    if not path.is_file():
        raise UserError("sample sheet not found", path, "set 'videos' in the config to your TSV")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, comment="#").fillna("")
    except (ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"cannot read the sample sheet ({exc})", path, "save it as TSV") from exc
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
    for line, (name, video) in enumerate(zip(table["video"], table["path"], strict=True), 2):
        if not name.strip() or not video.strip():
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
    return table.set_index("video", drop=False)
