"""The memory report to the letter: a record's summary row, each video's overview row,
what each plot draws, the page's lines and tables, and the files a run leaves."""

import json

import pandas as pd
import pytest
from test_report import record

from sam2flow import report
from sam2flow.errors import UserError
from sam2flow.report import (
    FEW_BATCHES,
    SUMMARY_COLUMNS,
    human_bytes,
    ladder_figure,
    memory_figure,
    missing_row,
    read_summary,
    render_html,
    summary_lines,
    summary_row,
    summary_table,
    summary_table_from_rows,
    throughput_figure,
    video_overview,
)

GIB = 2**30


def gpu_record(**extra) -> dict:
    """A batch on a GPU that needed three attempts, two of them chunked."""
    attempts = [
        {"level": "whole", "peak_allocated_bytes": 7 * GIB, "peak_reserved_bytes": 8 * GIB},
        {"level": "chunked", "peak_allocated_bytes": 3 * GIB, "nvml_used_bytes": 9 * GIB},
        {"level": "chunked", "peak_allocated_bytes": None, "peak_reserved_bytes": 4 * GIB},
    ]
    snapshots = [
        {"host_rss": 2 * GIB, "total": 16 * GIB},
        {"host_rss": 3 * GIB, "total": None},
        {"host_rss": None},
    ]
    base = record(
        batch="0002",
        first=80,
        objects=[1, 4],
        status="recovered",
        attempts=attempts,
        snapshots=snapshots,
        frame_status={"ok": 70, "empty": 10},
        final_chunk_size=25,
        memory_cap_bytes=10 * GIB,
        status_level="chunked",
        seconds=8.0,
        frames_per_second=5.0,
        device="cuda:0",
        model="sam2.1_hiera_tiny",
        weights="ckpt.pt",
        video_warning="short",
    )
    return base | extra


def test_a_records_row_holds_its_figures_and_the_largest_peaks():
    assert summary_row(gpu_record()) == {
        "video": "v",
        "batch": "0002",
        "first_frame": 80,
        "last_frame": 119,
        "frames": 40,
        "objects": 2,
        "status": "recovered",
        "attempts": 3,
        "levels": "whole > chunked",
        "final_chunk_size": 25,
        "peak_allocated_bytes": 7 * GIB,
        "peak_reserved_bytes": 8 * GIB,
        "nvml_used_bytes": 9 * GIB,
        "memory_cap_bytes": 10 * GIB,
        "host_peak_rss_bytes": 3 * GIB,
        "device_total_bytes": 16 * GIB,
        "status_level": "chunked",
        "seconds": 8.0,
        "frames_per_second": 5.0,
        "ok": 70,
        "skipped_oom": 0,
        "no_prompt": 0,
        "empty": 10,
        "missing": 0,
        "device": "cuda:0",
        "model": "sam2.1_hiera_tiny",
        "weights": "ckpt.pt",
        "skip_reason": None,
        "video_warning": "short",
    }


def test_a_row_prefers_the_records_own_host_peak_and_counts_one_object_at_least():
    row = summary_row(gpu_record(host_peak_rss_bytes=5 * GIB, objects=[]))
    assert (row["host_peak_rss_bytes"], row["objects"]) == (5 * GIB, 1)
    bare = summary_row({"attempts": [], "frames_per_second": 3.0})
    assert bare["frames_per_second"] is None  # a batch that never ran has no speed
    assert (bare["peak_allocated_bytes"], bare["device_total_bytes"], bare["levels"]) == (
        None,
        None,
        "",
    )


def test_byte_columns_are_whole_numbers_or_empty():
    table = summary_table([gpu_record(), record(batch="0003", first=120)])
    for column in [c for c in SUMMARY_COLUMNS if c.endswith("_bytes")]:
        assert str(table[column].dtype) == "Int64", column
    assert table["peak_allocated_bytes"].tolist() == [7 * GIB, pd.NA]
    assert list(table.columns) == SUMMARY_COLUMNS


def overview_of(rows, videos=None):
    return video_overview(summary_table_from_rows(rows), videos).to_dict("records")


def test_each_video_is_one_row_with_its_batches_frames_memory_and_time():
    rows = [summary_row(gpu_record()), summary_row(record(batch="0003", first=120))]
    (row,) = overview_of(rows)
    assert row == {
        "video": "v",
        "state": "recovered",
        "batches": 2,
        "batches_ok": 1,
        "batches_recovered": 1,
        "batches_skipped": 0,
        "batches_missing": 0,
        "frames": 80,
        "ok": 110,
        "skipped_oom": 0,
        "no_prompt": 0,
        "empty": 10,
        "missing": 0,
        "memory": "GPU (torch peak allocated)",
        "peak_bytes": 7 * GIB,
        "limit_bytes": 10 * GIB,
        "seconds": 18.0,
        "frames_per_second": 80 / 18.0,
        "note": "short",
    }


def test_a_cpu_video_is_measured_against_the_machine_and_a_missing_batch_makes_it_incomplete():
    rows = [summary_row(record()), missing_row("v", "0001", 40, 59, "did not run")]
    (row,) = overview_of(rows)
    assert (row["state"], row["batches"], row["batches_missing"]) == ("incomplete", 2, 1)
    assert (row["frames"], row["missing"], row["ok"]) == (60, 20, 40)
    assert (row["memory"], row["peak_bytes"], row["limit_bytes"]) == (
        "host (peak RSS)",
        900 * 2**20,
        24 * GIB,
    )
    assert row["note"] == ""


def test_a_video_without_records_is_failed_with_the_reason_of_its_first_missing_batch():
    rows = [
        missing_row("w", "0000", 0, 9, "out of host memory"),
        missing_row("w", "0001", 10, 14, "did not run"),
    ]
    (row,) = overview_of(rows, videos=["w", "x"])[:1]
    assert {k: row[k] for k in ("state", "batches", "batches_missing", "frames", "missing")} == {
        "state": "failed",
        "batches": 2,
        "batches_missing": 2,
        "frames": 15,
        "missing": 15,
    }
    assert row["note"] == "no batch record: out of host memory"
    never = overview_of(rows, videos=["w", "x"])[1]
    assert (never["video"], never["state"], never["batches"], never["frames"]) == (
        "x",
        "failed",
        0,
        0,
    )
    assert never["note"] == "no batch record: see logs/extract_frames/x.log"


def test_videos_are_ordered_problems_first_then_by_frames_skipped():
    def video(name, **extra):
        return summary_row(record(video=name, **extra))

    rows = [
        video("a"),
        video("b", status="recovered"),
        video("c", frame_status={"no_prompt": 40}),
        video("d", status="skipped", frame_status={"ok": 35, "skipped_oom": 5}),
        video("e", status="skipped", frame_status={"ok": 30, "skipped_oom": 10}),
        missing_row("f", "0000", 0, 9, "did not run"),
    ]
    overview = overview_of(rows, videos=["g"])
    assert [(r["video"], r["state"]) for r in overview] == [
        ("f", "failed"),
        ("g", "failed"),
        ("e", "skipped frames"),
        ("d", "skipped frames"),
        ("c", "never prompted"),
        ("b", "recovered"),
        ("a", "done"),
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2 - 1, "1024.0 KiB"),
        (5 * 1024**2, "5.0 MiB"),
        (3 * GIB, "3.0 GiB"),
        (2048 * GIB, "2048.0 GiB"),
        (-2048, "-2.0 KiB"),
        (None, ""),
        (float("nan"), ""),
        (pd.NA, ""),
    ],
)
def test_bytes_in_human_units(value, text):
    assert human_bytes(value) == text


def few_gpu_batches():
    return summary_table([gpu_record(batch=f"{i:04d}", first=40 * i) for i in range(3)])


def test_few_gpu_batches_are_bars_against_the_cap():
    ax = memory_figure(few_gpu_batches()).axes[0]
    assert [p.get_height() for p in ax.patches] == [7.0, 7.0, 7.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["v/0000", "v/0001", "v/0002"]
    (cap,) = ax.lines
    assert (cap.get_label(), cap.get_ydata()[0], cap.get_linestyle()) == ("cap", 10.0, "--")
    assert ax.get_title() == "Peak GPU memory (torch peak allocated) per batch"
    assert ax.get_ylabel() == "GiB" and ax.get_legend() is not None


def test_a_machine_total_far_above_the_peaks_is_named_in_the_title_not_drawn():
    summary = summary_table([record()])  # 900 MiB against 24 GiB
    ax = memory_figure(summary).axes[0]
    assert list(ax.lines) == [] and ax.get_legend() is None
    assert ax.get_title() == "Peak host memory (peak RSS) per batch (machine total: 24.0 GiB)"
    near = summary_table([record(snapshots=[{"host_rss": 900 * 2**20, "total": 2 * GIB}])])
    (line,) = memory_figure(near).axes[0].lines
    assert (line.get_label(), line.get_ydata()[0]) == ("machine total", 2.0)


def test_many_batches_are_boxes_per_video_with_the_cap_across():
    rows = [gpu_record(video=v, batch=f"{i:04d}", first=40 * i) for v in "ab" for i in range(21)]
    ax = memory_figure(summary_table(rows)).axes[0]
    assert len(rows) > FEW_BATCHES
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    (cap,) = [line for line in ax.lines if line.get_label() == "cap"]
    assert cap.get_xdata()[0] == 10.0 and ax.get_xlabel() == "GiB" and ax.get_ylabel() == ""


def test_throughput_bars_per_batch_or_a_histogram():
    ax = throughput_figure(few_gpu_batches()).axes[0]
    assert [p.get_height() for p in ax.patches] == [5.0, 5.0, 5.0]
    assert ax.get_title() == "Throughput of batches that ran (frames/s)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["v/0000", "v/0001", "v/0002"]
    many = summary_table([record(batch=f"{i:04d}", first=40 * i) for i in range(50)])
    ax = throughput_figure(many).axes[0]
    assert sum(p.get_height() for p in ax.patches) == 50 and len(ax.patches) == 40
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("frames/s", "batches")


def test_the_ladder_counts_the_last_level_each_batch_needed_and_frame_slots_by_status():
    rows = [
        gpu_record(),  # chunked
        record(batch="0003", first=120),  # whole
        record(batch="0004", first=160, status="skipped", frame_status={"skipped_oom": 40}),
        record(batch="0005", first=200, attempts=[]),  # never ran: no level
    ]
    levels, slots = ladder_figure(summary_table(rows)).axes
    bars = {
        t.get_text(): p.get_height()
        for t, p in zip(levels.get_xticklabels(), levels.patches, strict=True)
    }
    assert bars == {"whole": 1, "chunked": 1, "offload": 0, "cpu": 0, "skipped": 1}
    assert levels.get_title() == "Batches by the last level they needed"
    widths = {
        t.get_text(): p.get_width()
        for t, p in zip(slots.get_yticklabels(), slots.patches, strict=True)
    }
    assert widths == {"ok": 150, "skipped oom": 40, "no prompt": 0, "empty": 10}
    assert slots.get_title() == "Frame slots by status"


def page(rows, skipped=None, videos=None, partial=False):
    summary = summary_table_from_rows(rows)
    skipped = skipped if skipped is not None else pd.DataFrame(columns=report.SKIPPED_COLUMNS)
    return render_html(summary, skipped, videos, partial)


def test_the_page_counts_videos_batches_and_frame_slots_in_words():
    second = record(batch="0003", first=120, weights="ckpt.pt")
    html = page([summary_row(gpu_record()), summary_row(second)])
    assert "<p>1 video: 1 recovered.<br>2 batches: 1 ok, 1 recovered.<br>" in html
    assert "120 frame slots (frames x objects): 110 ok, 10 empty.</p>" in html
    assert html.count('<img alt="plot"') == 3
    assert "PARTIAL" not in html and "RANDOM WEIGHTS" not in html
    assert "<p>Every batch ran whole.</p>" not in html  # one needed three attempts
    assert "<p>No frame was skipped.</p>" in html
    assert "<h2>Problems</h2><ul><li>v: short</li>" in html


def test_a_partial_page_says_how_much_has_no_record():
    rows = [summary_row(record()), missing_row("v", "0001", 40, 59, "did not run")]
    rows.append(report._extraction_failed("w", report.Path("nowhere")))
    html = page(rows, partial=True)
    assert (
        "1 of 2 planned batches (20 frames) have no record; 1 video not extracted. Fix what"
        in " ".join(html.split())
    )
    assert "RANDOM WEIGHTS: these masks come from an untrained model" in html
    assert "v/0001 (frames 40-59): did not run" in html
    rows.append(report._extraction_failed("x", report.Path("nowhere")))
    assert "; 2 videos not extracted" in page(rows, partial=True)


def test_a_page_without_any_batch_that_ran_has_no_plots():
    html = page([missing_row("v", "0000", 0, 9, "did not run")])
    assert '<img alt="plot"' not in html and "<p>Every batch ran whole.</p>" in html


def test_tables_show_units_three_figures_and_how_many_rows_were_left_out():
    frame = pd.DataFrame(
        {"name": ["a<b", None], "bytes": [1536, None], "rate": [3.14159, float("nan")]}
    )
    html = report._table(frame, ["bytes"], limit=1)
    assert "<td>a&lt;b</td>" in html and "<td>1.5 KiB</td>" in html and "<td>3.14</td>" in html
    assert html.endswith("<p>... and 1 more rows in the CSV.</p>")
    whole = report._table(frame, ["bytes"])
    assert "more rows" not in whole and "None" not in whole and "nan" not in whole
    assert whole.count("<td></td>") == 3
    assert "<td>1.23e+03</td>" in report._table(pd.DataFrame({"x": [1234.5]}))


def test_two_records_of_the_same_frames_are_refused_naming_both(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "read_record", lambda p: json.loads(p.read_text()))
    paths = []
    for name in ("a.json", "b.json"):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(record(video="")))
    with pytest.raises(UserError) as info:
        report.read_tables(paths)
    assert str(info.value) == (
        f"two records of frames 0-39 of video (unnamed) (the other: {paths[0]}): {paths[1]}: "
        "give each batch's memory.json once"
    )


def test_tables_are_ordered_by_video_then_first_frame(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "read_record", lambda p: json.loads(p.read_text()))
    given = [("b", 40), ("a", 40), ("b", 0), ("a", 0)]
    paths = []
    for i, (video, first) in enumerate(given):
        r = record(
            video=video, batch=f"{first // 40:04d}", first=first, skipped_ranges=[[first, first]]
        )
        r["skip_reasons"] = ["oom"]
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(r))
    summary, skipped = report.read_tables(paths)
    expected = [("a", 0), ("a", 40), ("b", 0), ("b", 40)]
    assert list(zip(summary["video"], summary["first_frame"], strict=True)) == expected
    assert list(zip(skipped["video"], skipped["first_frame"], strict=True)) == expected
    assert list(summary.index) == [0, 1, 2, 3]


def test_the_console_lists_ten_problems_and_counts_the_rest():
    rows = [summary_row(record())] + [
        missing_row("v", f"{i:04d}", 40 * i, 40 * i + 39, "did not run") for i in range(1, 13)
    ]
    lines = summary_lines(summary_table_from_rows(rows))
    assert lines[:2] == ["1 video: 1 incomplete", "13 batches: 1 ok, 12 missing"]
    assert lines[2] == "v/0001 (frames 40-79): did not run"
    assert len(lines) == 13 and lines[-1] == "... and 2 more problems in the memory report"


def test_a_summary_csv_is_read_with_batch_names_as_text(tmp_path):
    summary_table([record(batch="0007")]).to_csv(tmp_path / "s.csv", index=False)
    table = read_summary(tmp_path / "s.csv")
    assert table["batch"].tolist() == ["0007"] and table["missing"].tolist() == [0]


def test_a_job_log_gives_the_reason_a_batch_has_no_record(tmp_path):
    log = tmp_path / "0001.log"
    assert (
        report.failure_reason(log)
        == "did not run (a job it needs failed, or the run stopped first)"
    )
    log.write_text("2026-12-05 10:00:00,1 INFO sam2flow: start\n")
    assert report.failure_reason(log) == f"failed without an error line (log: {log})"
    log.write_text(
        "x\n2026-12-05 10:00:01,2 ERROR sam2flow.segment: frames missing: f: fix\n"
        "2026-12-05 10:00:02,3 ERROR sam2flow: second\n"
    )
    assert report.failure_reason(log) == f"frames missing: f: fix (log: {log})"


def test_a_video_named_na_keeps_its_name_in_the_summary_csv(tmp_path):
    summary_table([record(video="NA", batch="0000")]).to_csv(tmp_path / "s.csv", index=False)
    table = read_summary(tmp_path / "s.csv")
    assert table["video"].tolist() == ["NA"] and pd.isna(table.loc[0, "skip_reason"])


def test_a_missing_batch_and_a_video_never_extracted_have_rows_of_their_own(tmp_path):
    empty = dict.fromkeys(SUMMARY_COLUMNS)
    zeros = {"ok": 0, "skipped_oom": 0, "no_prompt": 0, "empty": 0}
    assert missing_row("v", "0001", 40, 59, "did not run") == empty | zeros | {
        "video": "v",
        "batch": "0001",
        "first_frame": 40,
        "last_frame": 59,
        "status": "missing",
        "frames": 20,
        "attempts": 0,
        "levels": "",
        "skip_reason": "did not run",
        "missing": 20,
    }
    (tmp_path / "extract_frames").mkdir()
    (tmp_path / "extract_frames" / "w.log").write_text(
        "2026-12-05 10:00:00,1 ERROR sam2flow: video not found: w.mp4: check the path\n"
    )
    assert report._extraction_failed("w", tmp_path) == empty | {
        "video": "w",
        "batch": "",
        "status": "missing",
        "attempts": 0,
        "levels": "",
        "skip_reason": "frames not extracted: video not found: w.mp4: check the path "
        f"(log: {tmp_path / 'extract_frames' / 'w.log'})",
    }


def test_an_html_table_in_full():
    frame = pd.DataFrame({"video": ["a<b", None], "n": [1, 2]})
    assert report._table(frame) == (
        '<table border="1" class="dataframe">\n  <thead>\n    <tr style="text-align: right;">'
        "\n      <th>video</th>\n      <th>n</th>\n    </tr>\n  </thead>\n  <tbody>\n    <tr>"
        "\n      <td>a&lt;b</td>\n      <td>1</td>\n    </tr>\n    <tr>\n      <td></td>\n"
        "      <td>2</td>\n    </tr>\n  </tbody>\n</table>"
    )


def test_text_columns_of_the_summary_csv_stay_text(tmp_path):
    rows = [record(video="NA", batch="0001", skip_reason="NA", video_warning="null")]
    summary_table(rows).to_csv(tmp_path / "s.csv", index=False)
    table = read_summary(tmp_path / "s.csv")
    assert table.loc[0, ["video", "batch", "skip_reason", "video_warning"]].tolist() == [
        "NA",
        "0001",
        "NA",
        "null",
    ]


@pytest.mark.parametrize(("problems", "more"), [(10, None), (11, "... and 1 more problems")])
def test_the_console_shows_ten_problems_before_counting(problems, more):
    rows = [summary_row(record())] + [  # and the video never extracted: one more problem
        missing_row("v", f"{i:04d}", 40 * i, 40 * i + 39, "x") for i in range(1, problems)
    ]
    lines = summary_lines(summary_table_from_rows(rows), videos=["v", "never"])
    assert lines[0] == "2 videos: 1 failed, 1 incomplete"
    assert lines[2] == "never: no batch record: see logs/extract_frames/never.log"
    assert len(lines) == 2 + 10 + (more is not None)
    assert (lines[-1].startswith("... and") and more in lines[-1]) or more is None


def test_one_batch_and_one_frame_slot_are_said_in_the_singular():
    html = page([summary_row(record(frames=1, frame_status={"ok": 1}))])
    assert "<p>1 video: 1 done.<br>1 batch: 1 ok.<br>1 frame slot: 1 ok.</p>" in html


@pytest.mark.parametrize(
    ("attempts", "skipped", "listed"), [(1, 0, False), (2, 0, True), (1, 1, True)]
)
def test_the_detail_lists_batches_that_needed_more_than_one_attempt_or_skipped(
    attempts, skipped, listed
):
    row = summary_row(
        record(
            batch="0042",
            attempts=[{"level": "whole", "peak_allocated_bytes": 2048}] * attempts,
            frame_status={"ok": 40 - skipped, "skipped_oom": skipped},
        )
    )
    detail = page([row]).split("Batches that needed more than one attempt")[1]
    detail = detail.split("Skipped frame ranges")[0]
    assert ("<td>0042</td>" in detail) is listed
    assert ("<td>2.0 KiB</td>" in detail) is listed  # bytes in units
    assert ("Every batch ran whole." in detail) is not listed


def test_written_tables_have_no_index_column_and_the_skipped_list_is_tab_separated(tmp_path):
    from test_report import write

    skipped = record(
        batch="0001",
        first=40,
        status="skipped",
        frame_status={"ok": 30, "skipped_oom": 10},
        skipped_ranges=[[60, 69]],
        skip_reasons=["oom"],
    )
    summary, page_ = write(tmp_path, [skipped, record()])
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary["first_frame"].tolist() == [0, 40]
    assert (tmp_path / "k.tsv").read_text().splitlines() == [
        "\t".join(report.SKIPPED_COLUMNS),
        "v\t0001\t60\t69\t10\toom\t0",
    ]
    assert "PARTIAL" not in page_


def test_a_partial_summary_reads_job_logs_from_logs_and_keeps_every_skipped_range(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    for batch, first in (("0000", 0), ("0001", 40)):
        folder = results / "v" / "batches" / batch
        folder.mkdir(parents=True)
        r = record(batch=batch, first=first, status="skipped", skipped_ranges=[[first, first]])
        r["skip_reasons"] = [f"oom {batch}"]
        (folder / "memory.json").write_text(json.dumps(r))
    damaged = results / "v" / "batches" / "0002"
    damaged.mkdir()
    (damaged / "memory.json").write_text("{")
    (tmp_path / "logs" / "segment_batch" / "v").mkdir(parents=True)
    (tmp_path / "logs" / "segment_batch" / "v" / "0003.log").write_text(
        "2026-12-05 10:00:00,1 ERROR sam2flow: frames gone: f: extract again\n"
    )

    def read(path):  # records shaped for the report only: the schema is not the point here
        try:
            return json.loads(path.read_text())
        except ValueError:
            raise UserError("batch record is damaged", path, "segment it again") from None

    monkeypatch.setattr(report, "read_record", read)
    plan = {"v": {"0000": [0, 39], "0001": [40, 79], "0002": [80, 119], "0003": [120, 159]}}
    summary = report.write_partial_summary("results", plan)
    for path in results.glob("*/batches/*/memory.json"):
        path.unlink()  # the suite checks every memory.json left
    reasons = dict(zip(summary["batch"], summary["skip_reason"], strict=True))
    assert reasons["0002"] == (
        "batch record is damaged: results/v/batches/0002/memory.json: segment it again"
    )
    assert reasons["0003"] == "frames gone: f: extract again (log: logs/segment_batch/v/0003.log)"
    lines = (results / "skipped.tsv").read_text().splitlines()
    assert lines[0] == "\t".join(report.SKIPPED_COLUMNS)
    assert [line.split("\t")[5] for line in lines[1:]] == ["oom 0000", "oom 0001"]
    assert "PARTIAL" in (results / "memory_report.html").read_text()


def test_the_ladder_counts_every_batch_at_its_last_level():
    rows = [
        gpu_record(batch="0000"),
        gpu_record(batch="0001", first=40),
        record(batch="0002", first=80, attempts=[{"level": "whole"}, {"level": "offload"}]),
        record(batch="0003", first=120, status="skipped"),
        record(batch="0004", first=160, status="skipped"),
    ]
    levels, _ = ladder_figure(summary_table(rows)).axes
    bars = [p.get_height() for p in levels.patches]
    assert bars == [0, 2, 1, 0, 2]  # whole, chunked, offload, cpu, skipped


def test_exactly_few_batches_are_still_bars_and_the_cap_is_across_them():
    rows = [gpu_record(batch=f"{i:04d}", first=40 * i) for i in range(FEW_BATCHES)]
    rows[0] = gpu_record(attempts=[], frames_per_second=None)  # never ran: a bar of 0
    summary = summary_table(rows)
    ax = memory_figure(summary).axes[0]
    assert len(ax.patches) == FEW_BATCHES and ax.patches[0].get_height() == 0
    (cap,) = ax.lines
    assert list(cap.get_ydata()) == [10.0, 10.0]  # horizontal
    ax = throughput_figure(summary).axes[0]
    assert len(ax.patches) == FEW_BATCHES and ax.patches[0].get_height() == 0


def test_a_machine_total_four_times_the_peak_is_still_drawn():
    rss = 900 * 2**20
    near = [record(snapshots=[{"host_rss": rss, "total": 4 * rss}])]
    assert len(memory_figure(summary_table(near)).axes[0].lines) == 1
    far = [record(snapshots=[{"host_rss": rss, "total": 4 * rss + 2**20}])]
    assert len(memory_figure(summary_table(far)).axes[0].lines) == 0


def test_at_most_thirty_videos_get_a_box_and_outliers_show():
    rows = [
        gpu_record(video=f"v{k:02d}", batch=f"{i:04d}", first=40 * i)
        for k in range(31)
        for i in range(2)
    ]
    rows[0]["attempts"] = [{"level": "whole", "peak_allocated_bytes": 50 * GIB}]
    ax = memory_figure(summary_table(rows)).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"v{k:02d}" for k in range(30)]
    assert any(len(line.get_xdata()) and 50.0 in line.get_xdata() for line in ax.lines)


def test_the_plots_look_as_the_report_was_designed():
    """Sizes, colours and type sizes of the three plots, as in docs/report-*.png."""
    from matplotlib.colors import to_hex

    summary = few_gpu_batches()
    memory, throughput, ladder = (
        f(summary) for f in (memory_figure, throughput_figure, ladder_figure)
    )
    assert [tuple(f.get_size_inches()) for f in (memory, throughput, ladder)] == [
        (8, 3.2),
        (8, 2.8),
        (8, 2.8),
    ]
    ax = memory.axes[0]
    assert to_hex(ax.patches[0].get_facecolor()) == "#4c72b0"
    assert [c.get_label() for c in ax.containers] == ["peak"]
    assert to_hex(ax.lines[0].get_color()) == "#ff0000"
    assert ax.get_legend().get_texts()[0].get_fontsize() == 7
    ticks = ax.get_xticklabels()
    assert {(t.get_rotation(), t.get_fontsize()) for t in ticks} == {(90, 7)}
    assert to_hex(throughput.axes[0].patches[0].get_facecolor()) == "#55a868"
    a1, a2 = ladder.axes
    assert to_hex(a1.patches[0].get_facecolor()) == "#dd8452"
    assert to_hex(a2.patches[0].get_facecolor()) == "#8172b2"
    assert a1.get_position().x1 < a2.get_position().x0  # side by side


def test_videos_of_one_state_are_in_name_order_and_unknown_figures_stay_empty():
    quiet = {"snapshots": [], "seconds": 0.0}
    rows = [
        summary_row(record(video="b", video_warning="short", **quiet)),
        summary_row(record(video="b", batch="0001", first=40, video_warning="cut", **quiet)),
        summary_row(record(video="a")),
    ]
    a, b = overview_of(rows)
    assert (a["video"], b["video"]) == ("a", "b")
    assert b["note"] == "cut; short"
    assert all(pd.isna(b[k]) for k in ("peak_bytes", "limit_bytes", "frames_per_second"))
    assert (a["peak_bytes"], a["limit_bytes"]) == (900 * 2**20, 24 * GIB)


def test_a_gpu_video_without_a_cap_is_measured_against_the_whole_gpu():
    (row,) = overview_of([summary_row(gpu_record(memory_cap_bytes=None))])
    assert row["limit_bytes"] == 16 * GIB


def test_a_warning_is_one_problem_and_nothing_is_no_count():
    summary = summary_table([record(video_warning="short")])
    assert report.problems(summary, video_overview(summary)) == ["v: short"]
    assert report.in_words({}, "video", "videos") == "0 videos"


def test_a_video_never_extracted_is_no_batch_when_read_back_from_the_csv(tmp_path):
    rows = [summary_row(record(video="001")), report._extraction_failed("w", tmp_path)]
    summary_table_from_rows(rows).to_csv(tmp_path / "s.csv", index=False)
    table = read_summary(tmp_path / "s.csv")
    assert table["video"].tolist() == ["001", "w"]
    assert summary_lines(table)[:2] == ["2 videos: 1 failed, 1 done", "1 batch: 1 ok"]
