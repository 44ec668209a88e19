"""Reruns: how the workflow decides that a skipped batch is segmented again.

``segment_batch`` has a parameter, ``""`` for a batch segmented normally and
``"STRATEGY#N"`` for its N-th rerun (``memory.rerun_strategy``). Snakemake reruns a job
whose parameter changed, so each ``rerun_skipped`` run gives every batch that is still
skipped a new value, and a plain run leaves every batch's value as it was.

Snakemake evaluates the parameter twice: when it builds the DAG (the batch's old
``memory.json`` is there) and when the job starts (it is gone): the second time the batch
is found in ``results/skipped.tsv``, with the reruns it had, so both give the same value.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def parse_rerun(value: str) -> tuple[str, int]:
    """``"offload#2"`` -> ``("offload", 2)``; ``""`` -> ``("", 0)``.

    >>> parse_rerun("offload#2"), parse_rerun("")
    (('offload', 2), ('', 0))
    """
    strategy, _, rounds = (value or "").partition("#")
    return strategy, int(rounds or 0)


def listed_skipped(path: str | Path) -> dict[tuple[str, str], int]:
    """``(video, batch) -> reruns so far`` of the batches in ``skipped.tsv`` (none if absent)."""
    path = Path(path)
    if not path.is_file():
        return {}
    # na_filter off: a video the sheet names "NA" or "null" is that name, not a gap
    table = pd.read_csv(path, sep="\t", dtype=str, na_filter=False)
    reruns = table["reruns"] if "reruns" in table else [""] * len(table)
    return {
        (video, batch): int(n or 0)
        for video, batch, n in zip(table["video"], table["batch"], reruns, strict=True)
    }


def rerun_value(record: dict | None, listed: int | None, rerun_skipped: bool, strategy: str) -> str:
    """The ``segment_batch`` parameter of one batch.

    ``record``: its ``memory.json`` (``None`` when absent); ``listed``: its reruns in
    ``skipped.tsv`` (``None`` when not listed).

    >>> skipped = {"status": "skipped", "rerun_strategy": "offload#1"}
    >>> rerun_value(skipped, 1, True, "offload"), rerun_value(None, 1, True, "offload")
    ('offload#2', 'offload#2')
    >>> rerun_value(skipped, 1, False, "offload"), rerun_value({"status": "ok"}, None, True, "x")
    ('offload#1', '')
    """
    before = (record or {}).get("rerun_strategy") or ""
    skipped = (record or {}).get("status") == "skipped" or listed is not None
    if not (rerun_skipped and skipped):
        return before
    rounds = parse_rerun(before)[1] if record is not None else (listed or 0)
    return f"{strategy}#{rounds + 1}"
