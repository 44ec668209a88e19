"""The summary's tables, from batch records."""

import json
import re
from pathlib import Path
from unittest.mock import patch

import pandas as pd

from sam2flow.report import skipped_table


def test_each_skipped_range_is_a_row_with_its_own_reason():
    record = {
        "video": "v",
        "batch": "0000",
        "skipped_ranges": [[120, 129], [130, 139]],
        "skip_reason": "out of memory",
        "skip_reasons": ["out of memory", "no mask to continue from"],
    }
    table = skipped_table([record])
    assert table[["first_frame", "last_frame", "frames"]].values.tolist() == [
        [120, 129, 10],
        [130, 139, 10],
    ]
    assert table["reason"].tolist() == ["out of memory", "no mask to continue from"]


def test_a_record_from_before_skip_reasons_lists_its_one_reason():
    record = {"video": "v", "batch": "0000", "skipped_ranges": [[0, 9]], "skip_reason": "oom"}
    assert skipped_table([record])["reason"].tolist() == ["oom"]


def record(video="v", batch="0000", first=0, frames=40, **extra) -> dict:
    """A batch record shaped like a CPU run's (snapshots carry host RSS and machine total)."""
    snapshot = {"stage": "end", "device": "cpu", "host_rss": 900 * 2**20, "total": 24 * 2**30}
    base = {
        "video": video,
        "batch": batch,
        "first_frame": first,
        "last_frame": first + frames - 1,
        "frames_total": frames,
        "objects": [1],
        "status": "ok",
        "attempts": [{"level": "whole", "peak_allocated_bytes": None}],
        "snapshots": [snapshot],
        "frame_status": {"ok": frames},
        "skipped_ranges": [],
        "skip_reasons": [],
        "seconds": 10.0,
        "frames_per_second": frames / 10.0,
        "device": "cpu",
        "weights": "random",
    }
    return base | extra


def write(tmp_path, records, videos=None):
    from sam2flow.report import write_summary

    paths = []
    for i, r in enumerate(records):
        (tmp_path / f"r{i}.json").write_text(json.dumps(r))
        paths.append(tmp_path / f"r{i}.json")
    with patch("sam2flow.report.read_record", lambda p: json.loads(Path(p).read_text())):
        write_summary(paths, tmp_path / "s.csv", tmp_path / "r.html", tmp_path / "k.tsv", videos)
    return pd.read_csv(tmp_path / "s.csv"), (tmp_path / "r.html").read_text()


def test_cpu_records_show_host_memory_in_the_csv_and_the_html(tmp_path):
    summary, page = write(tmp_path, [record(), record(batch="0001", first=40)])
    assert summary["host_peak_rss_bytes"].tolist() == [900 * 2**20] * 2
    assert summary["device_total_bytes"].tolist() == [24 * 2**30] * 2
    assert "host (peak RSS)" in page and "900.0 MiB" in page and "24.0 GiB" in page


def test_gpu_records_draw_the_cap_line():
    from sam2flow.report import memory_figure, summary_table

    gpu = {"level": "whole", "peak_allocated_bytes": 5 * 2**30}
    rows = [record(attempts=[gpu], memory_cap_bytes=8 * 2**30, device="cuda:0")]
    fig = memory_figure(summary_table(rows))
    lines = [line for ax in fig.axes for line in ax.lines if line.get_label() == "cap"]
    assert len(lines) == 1 and lines[0].get_ydata()[0] == 8.0  # GiB
    assert "GPU memory" in fig.axes[0].get_title()


def test_a_batch_with_skipped_frames_is_in_the_detail_table_with_its_reason(tmp_path):
    skipped = record(
        batch="0001",
        first=40,
        status="skipped",
        frame_status={"ok": 30, "skipped_oom": 10},
        attempts=[{"level": "whole", "peak_allocated_bytes": None}] * 3,
        skipped_ranges=[[60, 69]],
        skip_reasons=["out of memory at every level down to 25 frames"],
        skip_reason="out of memory at every level down to 25 frames",
    )
    _, page = write(tmp_path, [record(), skipped])
    detail = page.split("Batches that needed more than one attempt")[1]
    assert "0001" in detail.split("Skipped frame ranges")[0]
    assert "out of memory at every level down to 25 frames" in detail.split("Skipped frame")[1]


def test_the_page_has_no_none_cells_no_dict_reprs_and_lists_failed_videos_first(tmp_path):
    never = record(video="w", frame_status={"no_prompt": 40}, attempts=[])
    _, page = write(tmp_path, [record(), never], videos=["v", "w", "broken"])
    body = re.sub(r"data:image/png;base64,[^\"]+", "", page.split("</style>")[1])
    assert "None" not in body and "{" not in body and "nan" not in body.lower()
    assert "3 videos: 1 failed, 1 never prompted, 1 done" in body
    assert "no batch record: see logs/extract_frames/broken.log" in body
    order = [re.search(rf"<td>{v}</td>", body).start() for v in ("broken", "w", "v")]
    assert order == sorted(order)


def test_many_batches_are_drawn_as_distributions():
    from sam2flow.report import FEW_BATCHES, memory_figure, summary_table, throughput_figure

    rows = [record(batch=f"{i:04d}", first=40 * i) for i in range(FEW_BATCHES + 1)]
    summary = summary_table(rows)
    axes = memory_figure(summary).axes[0]  # a box per video, not a bar per batch
    assert axes.get_xlabel() == "GiB" and [t.get_text() for t in axes.get_yticklabels()] == ["v"]
    assert throughput_figure(summary).axes[0].get_xlabel() == "frames/s"


def test_a_partial_summary_accounts_for_exactly_the_planned_batches(tmp_path):
    """report.write_partial_summary (after a failed run): the sheet's videos only (not a
    leftover video's records), a record of other frames (another batch size) is no
    record, a batch without one is a missing row with its log's error line, a video whose
    extraction failed is a row with its reason, and the page says PARTIAL."""
    from sam2flow.report import write_partial_summary

    for video, batch, first in (("a", "0000", 0), ("a", "0001", 30), ("demo", "0000", 0)):
        path = tmp_path / "results" / video / "batches" / batch / "memory.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(record(video=video, batch=batch, first=first)))
    log = tmp_path / "logs" / "segment_batch" / "a" / "0002.log"
    log.parent.mkdir(parents=True)
    log.write_text(
        "2026-12-05 12:00:00,000 INFO sam2flow.segment: batch 0002\n"
        "2026-12-05 12:00:01,000 ERROR sam2flow: prompt file not found: a.csv: fix it\n"
        "2026-12-05 12:00:01,000 ERROR sam2flow: Traceback (most recent call last):\n"
    )
    (tmp_path / "logs" / "extract_frames").mkdir(parents=True)
    (tmp_path / "logs" / "extract_frames" / "b.log").write_text(
        "2026-12-05 12:00:00,000 ERROR sam2flow: video not found: b.mp4: check the path\n"
    )
    plan = {"a": {"0000": [0, 39], "0001": [40, 79], "0002": [80, 99]}, "b": None}
    with patch("sam2flow.report.read_record", lambda p: json.loads(Path(p).read_text())):
        summary = write_partial_summary(tmp_path / "results", plan, tmp_path / "logs")
    table = pd.read_csv(tmp_path / "results" / "memory_summary.csv", dtype={"batch": str})
    assert table[["video", "batch", "status"]].fillna("").values.tolist() == [
        ["a", "0000", "ok"],
        ["a", "0001", "missing"],
        ["a", "0002", "missing"],
        ["b", "", "missing"],
    ]
    assert table["missing"].fillna(0).tolist() == [0, 40, 20, 0]
    assert table["skip_reason"][2] == f"prompt file not found: a.csv: fix it (log: {log})"
    assert table["skip_reason"][3].startswith("frames not extracted: video not found: b.mp4")
    assert len(summary) == 4
    page = (tmp_path / "results" / "memory_report.html").read_text()
    assert "PARTIAL" in page.split("<h2>")[0]
    assert "2 of 3 planned batches (60 frames) have no record; 1 video not extracted" in page
    problems = page.split("<h2>Problems</h2>")[1].split("<h2>")[0]
    assert "a/0002 (frames 80-99): prompt file not found: a.csv" in problems
    assert "b: no batch record: frames not extracted: video not found: b.mp4" in problems
    assert "<td>demo</td>" not in page and "demo/" not in page
    assert "2 videos: 1 failed, 1 incomplete" in page
    for path in (tmp_path / "results").glob("*/batches/*/memory.json"):
        path.unlink()  # shaped for the report only; the suite checks every memory.json left


def test_the_console_summary_reads_a_csv_written_before_the_missing_column(tmp_path):
    """A run with nothing to do prints its summary from the CSV an older version wrote."""
    from sam2flow.report import read_summary, summary_lines, summary_table

    old = summary_table([record()]).drop(columns=["missing"])
    old.to_csv(tmp_path / "s.csv", index=False)
    assert summary_lines(read_summary(tmp_path / "s.csv"), ["v"]) == [
        "1 video: 1 done",
        "1 batch: 1 ok",
    ]


def test_skipped_frames_are_counted_as_skipped_in_the_csv_and_the_page_totals(tmp_path):
    skipped = record(
        batch="0001",
        first=40,
        status="skipped",
        frame_status={"ok": 30, "skipped_oom": 10},
        skipped_ranges=[[60, 69]],
        skip_reasons=["out of memory at every level"],
    )
    table, page = write(tmp_path, [record(), skipped])
    row = table.sort_values("first_frame").iloc[1]
    assert (row["ok"], row["skipped_oom"]) == (30, 10)
    assert (table["ok"].sum(), table["skipped_oom"].sum()) == (70, 10)
    assert "80 frame slots (frames x objects): 70 ok, 10 skipped oom" in page
