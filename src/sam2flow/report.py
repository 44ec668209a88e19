"""Report: every batch's memory record collected into a CSV, an HTML page with plots, and
the list of skipped batches and frame ranges."""

from __future__ import annotations

import base64
import io
import logging
import re
from pathlib import Path

import pandas as pd

from .atomic import atomic_path, write_text
from .errors import UserError
from .plan.reruns import parse_rerun
from .record import FRAME_STATUSES, read_record
from .vocabulary import BATCH_STATUSES, LEVELS, RECOVERED, SKIPPED

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    "video",
    "batch",
    "first_frame",
    "last_frame",
    "frames",
    "objects",
    "status",
    "attempts",
    "levels",
    "final_chunk_size",
    "peak_allocated_bytes",
    "peak_reserved_bytes",
    "nvml_used_bytes",
    "memory_cap_bytes",
    "host_peak_rss_bytes",
    "device_total_bytes",
    "status_level",
    "seconds",
    "frames_per_second",
    *FRAME_STATUSES,
    "missing",
    "device",
    "model",
    "weights",
    "skip_reason",
    "video_warning",
]
#: A planned batch without a current record (its job failed or did not run): its row's
#: ``status``; its ``missing`` column counts its frames (its objects are unknown).
MISSING = "missing"


def _max(values) -> int | None:
    values = [v for v in values if v is not None]
    return max(values) if values else None


def summary_row(record: dict) -> dict:
    """One summary row from a batch's ``memory.json`` record."""
    attempts = record.get("attempts", [])
    snapshots = record.get("snapshots", [])
    counts = record.get("frame_status", {})
    row = {
        "video": record.get("video"),
        "batch": record.get("batch"),
        "first_frame": record.get("first_frame"),
        "last_frame": record.get("last_frame"),
        "frames": record.get("frames_total"),
        "objects": len(record.get("objects", [])) or 1,
        "status": record.get("status"),
        "attempts": len(attempts),
        "levels": " > ".join(dict.fromkeys(a["level"] for a in attempts)),
        "final_chunk_size": record.get("final_chunk_size"),
        "peak_allocated_bytes": _max(a.get("peak_allocated_bytes") for a in attempts),
        "peak_reserved_bytes": _max(a.get("peak_reserved_bytes") for a in attempts),
        "nvml_used_bytes": _max(a.get("nvml_used_bytes") for a in attempts),
        "memory_cap_bytes": record.get("memory_cap_bytes"),
        "host_peak_rss_bytes": record.get("host_peak_rss_bytes")
        or _max(snap.get("host_rss") for snap in snapshots),
        "device_total_bytes": _max(snap.get("total") for snap in snapshots),
        "status_level": record.get("status_level"),
        "seconds": record.get("seconds"),
        "frames_per_second": record.get("frames_per_second") if attempts else None,
        "device": record.get("device"),
        "model": record.get("model"),
        "weights": record.get("weights"),
        "skip_reason": record.get("skip_reason"),
        "video_warning": record.get("video_warning"),
    }
    for status in FRAME_STATUSES:
        row[status] = int(counts.get(status, 0))
    row[MISSING] = 0
    return row


def missing_row(video: str, batch: str, first: int, last: int, reason: str) -> dict:
    """The summary row of a planned batch that has no current record.

    >>> row = missing_row("v", "0001", 40, 79, "did not run")
    >>> row["status"], row["frames"], row["missing"], row["ok"], row["objects"]
    ('missing', 40, 40, 0, None)
    """
    row = {column: None for column in SUMMARY_COLUMNS}
    row.update(video=video, batch=batch, first_frame=first, last_frame=last, status=MISSING)
    row.update(frames=last - first + 1, attempts=0, levels="", skip_reason=reason)
    row.update({status: 0 for status in FRAME_STATUSES}, missing=last - first + 1)
    return row


def summary_table(records: list[dict]) -> pd.DataFrame:
    """A row per batch record."""
    return summary_table_from_rows([summary_row(r) for r in records])


def summary_table_from_rows(rows: list[dict]) -> pd.DataFrame:
    """Summary rows as a table; byte counts as integers (empty where the device has none)."""
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for column in SUMMARY_COLUMNS:
        if column.endswith("_bytes"):
            summary[column] = summary[column].astype("Int64")
    return summary


def read_tables(paths: list[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The summary and the skipped table of ``memory.json`` files, ordered by video and
    first frame. Records are read one at a time and dropped: memory follows the rows
    kept, not the records' snapshots."""
    rows, skipped, seen = [], [], {}
    for path in paths:
        record = read_record(path)
        key = tuple(record.get(k) for k in ("video", "batch", "first_frame", "last_frame"))
        if key in seen:
            raise UserError(
                f"two records of frames {key[2]}-{key[3]} of video {key[0] or '(unnamed)'} "
                f"(the other: {seen[key]})",
                path,
                "give each batch's memory.json once",
            )
        seen[key] = path
        rows.append(summary_row(record))
        skipped += skipped_rows(record)
    summary = _sorted(summary_table_from_rows(rows))
    return summary, _sorted(pd.DataFrame(skipped, columns=SKIPPED_COLUMNS))


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return table
    return table.sort_values(["video", "first_frame"], kind="stable").reset_index(drop=True)


def skip_reasons(record: dict) -> list:
    """One reason per skipped range (records written before ``skip_reasons`` have one)."""
    return record.get("skip_reasons", [record.get("skip_reason")] * len(record["skipped_ranges"]))


SKIPPED_COLUMNS = ["video", "batch", "first_frame", "last_frame", "frames", "reason", "reruns"]


def skipped_rows(record: dict) -> list[dict]:
    """A row per skipped frame range of one record: video, batch, frames, reason, reruns."""
    return [
        {
            "video": record.get("video"),
            "batch": record.get("batch"),
            "first_frame": lo,
            "last_frame": hi,
            "frames": hi - lo + 1,
            "reason": why,
            "reruns": parse_rerun(record.get("rerun_strategy", ""))[1],
        }
        for (lo, hi), why in zip(record["skipped_ranges"], skip_reasons(record), strict=True)
    ]


def skipped_table(records: list[dict]) -> pd.DataFrame:
    """A row per skipped frame range of ``records``."""
    return pd.DataFrame([row for r in records for row in skipped_rows(r)], columns=SKIPPED_COLUMNS)


def video_overview(summary: pd.DataFrame, videos: list[str] | None = None) -> pd.DataFrame:
    """One row per video (those of ``videos`` without any record included, as failed):
    batches by status, frame slots by status, peak memory against its limit, time,
    throughput and a note; problems first (``STATE_ORDER``, then most frames skipped)."""
    rows = []
    for video, group in summary.groupby("video", sort=True):
        missing = group[group["status"] == MISSING]
        group = group[group["status"] != MISSING]
        if group.empty:
            rows.append(_failed_video(video, missing))
            continue
        gpu = group["peak_allocated_bytes"].notna().any()
        peak = group["peak_allocated_bytes" if gpu else "host_peak_rss_bytes"].max()
        limit = group["memory_cap_bytes"].max() if gpu else None
        if limit is None or pd.isna(limit):
            limit = group["device_total_bytes"].max()
        seconds = group["seconds"].sum()
        rows.append(
            {
                "video": video,
                "state": "incomplete" if len(missing) else video_state(group),
                "batches": len(group) + len(missing),
                **{f"batches_{k}": int((group["status"] == k).sum()) for k in BATCH_STATUSES},
                f"batches_{MISSING}": len(missing),
                "frames": int(group["frames"].sum() + missing[MISSING].sum()),
                **{k: int(group[k].sum()) for k in FRAME_STATUSES},
                MISSING: int(missing["frames"].sum()),
                "memory": "GPU (torch peak allocated)" if gpu else "host (peak RSS)",
                "peak_bytes": None if pd.isna(peak) else int(peak),
                "limit_bytes": None if pd.isna(limit) else int(limit),
                "seconds": float(seconds),
                "frames_per_second": float(group["frames"].sum() / seconds) if seconds else None,
                "note": "; ".join(sorted(set(group["video_warning"].dropna()))),
            }
        )
    for video in sorted(set(videos or []) - set(summary["video"])):
        rows.append(_failed_video(video, summary.iloc[0:0]))
    table = pd.DataFrame(rows, columns=OVERVIEW_COLUMNS)
    keys = pd.DataFrame(
        {"state": table["state"].map(STATE_ORDER), "skipped": -table["skipped_oom"].fillna(0)}
    )
    order = keys.sort_values(["state", "skipped"], kind="stable").index
    return table.loc[order].reset_index(drop=True)


def _failed_video(video: str, missing: pd.DataFrame) -> dict:
    """The overview row of a video without any current batch record."""
    note = (
        f"no batch record: see logs/extract_frames/{video}.log"
        if missing.empty
        else f"no batch record: {missing['skip_reason'].iloc[0]}"
    )
    return {
        "video": video,
        "state": "failed",
        "batches": len(missing),
        f"batches_{MISSING}": len(missing),
        "frames": int(pd.to_numeric(missing["frames"]).fillna(0).sum()),
        MISSING: int(pd.to_numeric(missing[MISSING]).fillna(0).sum()),
        "note": note,
    }


#: A video's state in the overview, problems first.
STATE_ORDER = {
    "failed": 0,
    "incomplete": 1,
    "skipped frames": 2,
    "never prompted": 3,
    "recovered": 4,
    "done": 5,
}


def video_state(batches: pd.DataFrame) -> str:
    """What a reader must know first about a video, from its batches' summary rows."""
    if batches["skipped_oom"].sum():
        return "skipped frames"
    if batches["no_prompt"].sum() == (batches["frames"] * batches["objects"]).sum():
        return "never prompted"
    return "recovered" if (batches["status"] == RECOVERED).any() else "done"


OVERVIEW_COLUMNS = [
    "video",
    "state",
    "batches",
    *[f"batches_{k}" for k in (*BATCH_STATUSES, MISSING)],
    "frames",
    *FRAME_STATUSES,
    MISSING,
    "memory",
    "peak_bytes",
    "limit_bytes",
    "seconds",
    "frames_per_second",
    "note",
]
#: Up to this many batches the plots show one bar per batch; beyond, distributions.
FEW_BATCHES = 40
#: The HTML lists at most this many batches and skipped ranges (the CSV and TSV hold all).
HTML_ROWS = 300


def human_bytes(value) -> str:
    """``1536`` -> ``'1.5 KiB'``; empty for a missing value.

    >>> human_bytes(3 * 2**30), human_bytes(None)
    ('3.0 GiB', '')
    """
    if value is None or pd.isna(value):
        return ""
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def in_words(counts: dict[str, int], noun: str, nouns: str) -> str:
    """A count in words.

    >>> in_words({"ok": 3, "skipped": 1}, "batch", "batches")
    '4 batches: 3 ok, 1 skipped'
    >>> in_words({"ok": 1}, "video", "videos")
    '1 video: 1 ok'
    """
    total = sum(counts.values())
    parts = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in counts.items() if n)
    return f"{total:,} {noun if total == 1 else nouns}" + (f": {parts}" if parts else "")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def memory_figure(summary: pd.DataFrame):
    """Peak memory per batch (few batches) or its distribution per video (many), on the
    GPU against the cap, on the CPU/MPS against the machine's memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gib = 2**30
    gpu = summary["peak_allocated_bytes"].notna().any()
    peak = summary["peak_allocated_bytes" if gpu else "host_peak_rss_bytes"].astype(float) / gib
    limit = summary["memory_cap_bytes" if gpu else "device_total_bytes"].astype(float) / gib
    what = "GPU memory (torch peak allocated)" if gpu else "host memory (peak RSS)"
    fig, ax = plt.subplots(figsize=(8, 3.2))
    if len(summary) <= FEW_BATCHES:
        labels = (summary["video"].astype(str) + "/" + summary["batch"].astype(str)).tolist()
        ax.bar(range(len(summary)), peak.fillna(0), color="#4c72b0", label="peak")
        ax.set_xticks(range(len(summary)), labels, rotation=90, fontsize=7)
    else:
        groups = [(v, peak[summary["video"] == v].dropna()) for v in summary["video"].unique()]
        groups = [(v, g) for v, g in groups if len(g)][:30]
        ax.boxplot([g for _, g in groups], orientation="horizontal", showfliers=True)
        ax.set_yticks(range(1, len(groups) + 1), [v for v, _ in groups], fontsize=7)
        ax.set_xlabel("GiB")
    title = f"Peak {what} per batch"
    if limit.notna().any():
        line, name = float(limit.max()), "cap" if gpu else "machine total"
        if gpu or line <= 4 * float(peak.max() or 0):  # a line far off would flatten the data
            draw = ax.axhline if len(summary) <= FEW_BATCHES else ax.axvline
            draw(line, color="r", linestyle="--", label=name)
            ax.legend(fontsize=7)
        else:
            title += f" ({name}: {human_bytes(line * gib)})"
    ax.set_title(title)
    if len(summary) <= FEW_BATCHES:
        ax.set_ylabel("GiB")
    return fig


def throughput_figure(summary: pd.DataFrame):
    """Frames/s of each batch that ran (bars when few, a histogram when many)."""
    import matplotlib.pyplot as plt

    fps = summary["frames_per_second"].astype(float)
    fig, ax = plt.subplots(figsize=(8, 2.8))
    if len(summary) <= FEW_BATCHES:
        labels = (summary["video"].astype(str) + "/" + summary["batch"].astype(str)).tolist()
        ax.bar(range(len(summary)), fps.fillna(0), color="#55a868")
        ax.set_xticks(range(len(summary)), labels, rotation=90, fontsize=7)
    else:
        ax.hist(fps.dropna(), bins=40, color="#55a868")
        ax.set_xlabel("frames/s")
        ax.set_ylabel("batches")
    ax.set_title("Throughput of batches that ran (frames/s)")
    return fig


def ladder_figure(summary: pd.DataFrame):
    """How far down the recovery ladder batches went, and frame slots by status."""
    import matplotlib.pyplot as plt

    reached = dict.fromkeys([*LEVELS, SKIPPED], 0)
    for levels, status in zip(summary["levels"], summary["status"], strict=True):
        if status == SKIPPED:
            reached[SKIPPED] += 1
        elif levels:
            reached[str(levels).split(" > ")[-1]] += 1
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 2.8))
    a1.bar(list(reached), list(reached.values()), color="#dd8452")
    a1.set_title("Batches by the last level they needed")
    counts = summary[list(FRAME_STATUSES)].sum()
    a2.barh([k.replace("_", " ") for k in counts.index], counts.values, color="#8172b2")
    a2.set_title("Frame slots by status")
    fig.tight_layout()
    return fig


_TEMPLATE = """<!doctype html><html><head><meta charset="utf-8">
<title>sam2flow memory report</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;font-size:12px;display:block;overflow-x:auto}
td,th{border:1px solid #ccc;padding:2px 6px;white-space:nowrap}
td.num{text-align:right}.warn{background:#fdd;padding:8px;font-weight:bold}
.bad{background:#fee}</style></head><body>
<h1>sam2flow memory report</h1>
{% if partial %}<p class="warn">PARTIAL: the run failed before every batch finished.
{{ missing_line }}. Fix what the problems below name and run again: finished batches are
kept.</p>{% endif %}
{% if random %}<p class="warn">RANDOM WEIGHTS: these masks come from an untrained model
(tests or the offline demo). Configure a checkpoint for real work.</p>{% endif %}
<p>{{ videos_line }}.<br>{{ batches_line }}.<br>{{ frames_line }}.</p>
{% if problems %}<h2>Problems</h2><ul>{% for line in problems %}<li>{{ line|e }}</li>
{% endfor %}</ul>{% endif %}
<h2>Videos</h2>{{ overview }}
{% for image in images %}<img alt="plot" src="data:image/png;base64,{{ image }}"><br>
{% endfor %}
<h2>Batches that needed more than one attempt or skipped frames</h2>
{% if detail %}{{ detail }}{% else %}<p>Every batch ran whole.</p>{% endif %}
<h2>Skipped frame ranges</h2>
{% if skipped %}{{ skipped }}{% else %}<p>No frame was skipped.</p>{% endif %}
<p>Every batch: <code>memory_summary.csv</code>; every skipped range:
<code>skipped.tsv</code>.</p></body></html>
"""


def _table(frame: pd.DataFrame, byte_columns=(), limit: int = HTML_ROWS) -> str:
    """An HTML table with human units, empty cells for missing values, at most ``limit``
    rows (the rest are counted)."""
    shown = frame.head(limit).copy()
    for col in byte_columns:
        shown[col] = shown[col].map(human_bytes)
    for col in shown.columns:
        if shown[col].dtype.kind == "f":
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:,.3g}")
    shown = shown.astype(object).where(shown.notna(), "")
    more = len(frame) - len(shown)
    note = f"<p>... and {more:,} more rows in the CSV.</p>" if more > 0 else ""
    return shown.to_html(index=False, na_rep="", escape=True) + note


def problems(summary: pd.DataFrame, overview: pd.DataFrame) -> list[str]:
    """What a reader must act on, one line each: videos without any record, batches
    without one (and why), truncation and other warnings of a video."""
    lines = [
        f"{row.video}: {row.note}"
        for row in overview.itertuples()
        if row.state == "failed" and row.note
    ]
    failed = set(overview.loc[overview["state"] == "failed", "video"])
    missing = summary[(summary["status"] == MISSING) & ~summary["video"].isin(failed)]
    lines += [
        f"{row.video}/{row.batch} (frames {int(row.first_frame)}-{int(row.last_frame)}): "
        f"{row.skip_reason}"
        for row in missing.itertuples()
    ]
    warned = summary[["video", "video_warning"]].dropna().drop_duplicates()
    lines += [f"{row.video}: {row.video_warning}" for row in warned.itertuples()]
    return lines


def read_summary(path: str | Path) -> pd.DataFrame:
    """A ``memory_summary.csv`` as written (batch names as text, ``0001``); one written
    before a column existed reads with it (``missing``: 0)."""
    text = {"video": str, "batch": str, "skip_reason": str, "video_warning": str}
    # only an empty cell is missing: a video the sheet names "NA" keeps its name
    table = pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""])
    for column in SUMMARY_COLUMNS:
        if column not in table:
            table[column] = 0 if column == MISSING else None
    return table


def _batches(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of batches, without those of videos that were never extracted."""
    return summary[summary["batch"].fillna("") != ""]


def summary_lines(summary: pd.DataFrame, videos: list[str] | None = None) -> list[str]:
    """What the end of a run prints: videos and batches by state, then the problems
    (at most ten; the report lists all)."""
    overview = video_overview(summary, videos)
    states = {k: int((overview["state"] == k).sum()) for k in STATE_ORDER}
    batches = _batches(summary)
    counts = {k: int((batches["status"] == k).sum()) for k in (*BATCH_STATUSES, MISSING)}
    lines = [in_words(states, "video", "videos"), in_words(counts, "batch", "batches")]
    found = problems(summary, overview)
    lines += found[:10]
    if len(found) > 10:
        lines.append(f"... and {len(found) - 10} more problems in the memory report")
    return lines


def render_html(
    summary: pd.DataFrame,
    skipped: pd.DataFrame,
    videos: list[str] | None = None,
    partial: bool = False,
) -> str:
    """The memory report page: overview first, then plots, then detail on demand.
    ``partial``: the run failed, and the page says so at its top."""
    import jinja2

    overview = video_overview(summary, videos)
    batches = _batches(summary)
    batch_counts = {k: int((batches["status"] == k).sum()) for k in (*BATCH_STATUSES, MISSING)}
    frame_counts = {k: int(summary[k].sum()) for k in FRAME_STATUSES}
    states = {k: int((overview["state"] == k).sum()) for k in STATE_ORDER}
    ran = summary[summary["status"] != MISSING]
    images = []
    if len(ran):
        import matplotlib.pyplot as plt

        for make in (memory_figure, throughput_figure, ladder_figure):
            fig = make(ran.reset_index(drop=True))
            images.append(_png(fig))
            plt.close(fig)
    detail = summary[(summary["attempts"] > 1) | (summary["skipped_oom"] > 0)]
    byte_cols = [c for c in SUMMARY_COLUMNS if c.endswith("_bytes")]
    missing = batches[batches["status"] == MISSING]
    unlisted = int((summary["batch"] == "").sum())
    return jinja2.Template(_TEMPLATE, autoescape=False).render(
        partial=partial,
        missing_line=(
            f"{len(missing):,} of {len(batches):,} planned batches "
            f"({int(missing['frames'].sum()):,} frames) have no record"
            + (f"; {unlisted} video{'s' * (unlisted > 1)} not extracted" if unlisted else "")
        ),
        random=bool((summary["weights"] == "random").any()),
        videos_line=in_words(states, "video", "videos"),
        batches_line=in_words(batch_counts, "batch", "batches"),
        frames_line=in_words(frame_counts, "frame slot", "frame slots (frames x objects)"),
        problems=problems(summary, overview)[:HTML_ROWS],
        overview=_table(overview, ["peak_bytes", "limit_bytes"]),
        images=images,
        detail=_table(detail, byte_cols) if len(detail) else "",
        skipped=_table(skipped) if len(skipped) else "",
    )


def write_summary(
    record_paths: list[str | Path],
    csv_path: str | Path,
    html_path: str | Path,
    skipped_path: str | Path,
    videos: list[str] | None = None,
) -> pd.DataFrame:
    """Write the summary CSV, the HTML report and the skipped list; return the summary.
    ``videos``: every video of the run, so that one with no batch record shows as failed."""
    summary, skipped = read_tables(record_paths)
    _write_tables(summary, skipped, csv_path, html_path, skipped_path, videos)
    return summary


def _write_tables(summary, skipped, csv_path, html_path, skipped_path, videos, partial=False):
    with atomic_path(csv_path) as tmp:
        summary.to_csv(tmp, index=False)
    with atomic_path(skipped_path) as tmp:
        skipped.to_csv(tmp, sep="\t", index=False)
    write_text(html_path, render_html(summary, skipped, videos, partial))
    log.info("%d batches, %d skipped ranges", len(summary), len(skipped))


def _extraction_failed(video: str, logs: Path) -> dict:
    """The summary row of a video whose frames were never listed: no batch, no frame
    count, the reason its extraction's log gives."""
    row = {column: None for column in SUMMARY_COLUMNS}
    reason = failure_reason(logs / "extract_frames" / f"{video}.log")
    row.update(video=video, batch="", status=MISSING, attempts=0, levels="")
    row.update(skip_reason=f"frames not extracted: {reason}")
    return row


#: The line a Snakemake script logs for a ``UserError`` (``logs.run_script``).
_ERROR_LINE = re.compile(r"^\S+ \S+ ERROR [\w.]+: (.+)$")


def failure_reason(log_path: str | Path) -> str:
    """Why a job left no record, from its log: its first error line, else that it did
    not run (a job it needs failed first)."""
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError:
        return "did not run (a job it needs failed, or the run stopped first)"
    for line in text.splitlines():
        if match := _ERROR_LINE.match(line):
            return f"{match.group(1)} (log: {log_path})"
    return f"failed without an error line (log: {log_path})"


def write_partial_summary(
    results: str | Path,
    plan: dict[str, dict[str, list[int]] | None],
    logs: str | Path = "logs",
) -> pd.DataFrame:
    """After a failed run (``--keep-going``), the summary of exactly the videos of the
    sample sheet (``plan``: each video's batches, name -> [first, last] frame, or ``None``
    when its frames were never listed): a batch's record counts only when it covers the
    batch's frames (a record left from another batch size does not), every other planned
    batch is a ``missing`` row with the reason its job's log gives, and the page says
    PARTIAL. Returns the summary."""
    results, logs = Path(results), Path(logs)
    rows, skipped = [], []
    for video, batches in plan.items():
        for batch, (first, last) in sorted((batches or {}).items()):
            path = results / video / "batches" / batch / "memory.json"
            reason = failure_reason(logs / "segment_batch" / video / f"{batch}.log")
            try:
                record = read_record(path) if path.is_file() else None
            except UserError as exc:
                record, reason = None, str(exc)
            if record and [record.get("first_frame"), record.get("last_frame")] == [first, last]:
                rows.append(summary_row(record))
                skipped += skipped_rows(record)
            else:
                rows.append(missing_row(video, batch, first, last, reason))
    extracted = [video for video, batches in plan.items() if batches is not None]
    for video in sorted(set(plan) - set(extracted)):
        rows.append(_extraction_failed(video, logs))
    summary = _sorted(summary_table_from_rows(rows))
    skipped_table_ = _sorted(pd.DataFrame(skipped, columns=SKIPPED_COLUMNS))
    _write_tables(
        summary,
        skipped_table_,
        results / "memory_summary.csv",
        results / "memory_report.html",
        results / "skipped.tsv",
        list(plan),
        partial=True,
    )
    return summary
