"""Report: every batch's memory record collected into a CSV, an HTML page with plots, and
the list of skipped batches and frame ranges."""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path

import pandas as pd

from .atomic import atomic_path, write_text
from .outputs import FRAME_STATUSES
from .record import read_record
from .reruns import parse_rerun

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
    "status_level",
    "frames_per_second",
    *FRAME_STATUSES,
    "device",
    "model",
    "weights",
    "skip_reason",
    "video_warning",
]


def _max(values) -> int | None:
    values = [v for v in values if v is not None]
    return max(values) if values else None


def summary_row(record: dict) -> dict:
    """One summary row from a batch's ``memory.json`` record."""
    attempts = record.get("attempts", [])
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
        "status_level": record.get("status_level"),
        "frames_per_second": record.get("frames_per_second"),
        "device": record.get("device"),
        "model": record.get("model"),
        "weights": record.get("weights"),
        "skip_reason": record.get("skip_reason"),
        "video_warning": record.get("video_warning"),
    }
    for status in FRAME_STATUSES:
        row[status] = int(counts.get(status, 0))
    return row


def read_records(paths: list[str | Path]) -> list[dict]:
    """Read ``memory.json`` files; ordered by video and first frame."""
    records = [read_record(p) for p in paths]
    return sorted(records, key=lambda r: (str(r.get("video")), r.get("first_frame") or 0))


def skip_reasons(record: dict) -> list:
    """One reason per skipped range (records written before ``skip_reasons`` have one)."""
    return record.get("skip_reasons", [record.get("skip_reason")] * len(record["skipped_ranges"]))


def skipped_table(records: list[dict]) -> pd.DataFrame:
    """A row per skipped frame range: video, batch, first and last frame, reason."""
    rows = [
        {
            "video": r.get("video"),
            "batch": r.get("batch"),
            "first_frame": lo,
            "last_frame": hi,
            "frames": hi - lo + 1,
            "reason": why,
            "reruns": parse_rerun(r.get("rerun_strategy", ""))[1],
        }
        for r in records
        for (lo, hi), why in zip(r["skipped_ranges"], skip_reasons(r), strict=True)
    ]
    return pd.DataFrame(
        rows,
        columns=["video", "batch", "first_frame", "last_frame", "frames", "reason", "reruns"],
    )


def _figure_html(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _plots(summary: pd.DataFrame) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mib = 1024**2
    labels = (summary["video"].astype(str) + "/" + summary["batch"].astype(str)).tolist()
    x = range(len(summary))
    out = []
    fig, ax = plt.subplots(figsize=(8, 3))
    peak = summary["peak_allocated_bytes"].astype(float) / mib
    ax.bar(x, peak.fillna(0), color="#4c72b0", label="peak allocated")
    cap = summary["memory_cap_bytes"].astype(float) / mib
    if cap.notna().any():
        ax.plot(list(x), cap, "r--", label="cap")
    ax.set_ylabel("MiB")
    ax.set_title("Peak GPU memory per batch (torch; empty on the CPU)")
    ax.set_xticks(list(x), labels, rotation=90, fontsize=7)
    ax.legend()
    out.append(_figure_html(fig))
    plt.close(fig)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
    a1.bar(x, summary["attempts"], color="#dd8452")
    a1.set_title("Attempts per batch")
    a1.set_xticks(list(x), labels, rotation=90, fontsize=7)
    counts = summary[list(FRAME_STATUSES)].sum()
    a2.bar(counts.index, counts.values, color=["#55a868", "#c44e52", "#8172b2", "#937860"])
    a2.set_title("Frames by status")
    out.append(_figure_html(fig))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(x, summary["frames_per_second"].astype(float).fillna(0), color="#55a868")
    ax.set_title("Throughput (frames/s)")
    ax.set_xticks(list(x), labels, rotation=90, fontsize=7)
    out.append(_figure_html(fig))
    plt.close(fig)
    return out


def render_html(summary: pd.DataFrame, skipped: pd.DataFrame, records: list[dict]) -> str:
    """The memory report page: warnings, totals, plots, the summary and the skipped list."""
    warn = ""
    if any(r.get("weights") == "random" for r in records):
        warn = (
            '<p style="background:#fdd;padding:8px;font-weight:bold">RANDOM WEIGHTS: these '
            "masks come from an untrained model (tests or the offline demo). Configure a "
            "checkpoint for real work.</p>"
        )
    totals = summary[list(FRAME_STATUSES)].sum().to_dict() if len(summary) else {}
    by_status = summary["status"].value_counts().to_dict() if len(summary) else {}
    plots = "".join(_plots(summary)) if len(summary) else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>sam2flow memory report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>"
        "<h1>sam2flow memory report</h1>"
        f"{warn}<p>Batches: {html.escape(str(by_status))}. "
        f"Frame slots: {html.escape(str(totals))}.</p>"
        f"{plots}<h2>Batches</h2>{summary.to_html(index=False, na_rep='')}"
        f"<h2>Skipped</h2>{skipped.to_html(index=False) if len(skipped) else '<p>None.</p>'}"
        "</body></html>"
    )


def write_summary(
    record_paths: list[str | Path],
    csv_path: str | Path,
    html_path: str | Path,
    skipped_path: str | Path,
) -> pd.DataFrame:
    """Write the summary CSV, the HTML report and the skipped list; return the summary."""
    records = read_records(record_paths)
    summary = pd.DataFrame([summary_row(r) for r in records], columns=SUMMARY_COLUMNS)
    skipped = skipped_table(records)
    with atomic_path(csv_path) as tmp:
        summary.to_csv(tmp, index=False)
    with atomic_path(skipped_path) as tmp:
        skipped.to_csv(tmp, sep="\t", index=False)
    write_text(html_path, render_html(summary, skipped, records))
    log.info("%d batches, %d skipped ranges", len(summary), len(skipped))
    return summary
