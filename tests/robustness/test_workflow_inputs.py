"""Good and bad inputs in one run: only the bad jobs fail, every readable frame is counted."""

import shutil

import pandas as pd
import pytest
import yaml

from conftest import ROOT, listed_in_troubleshooting, write_video


def test_keep_going_finishes_the_good_and_accounts_for_every_frame(project, tmp_path):
    good = write_video(tmp_path / "good.mp4", frames=20)
    weird_dir = tmp_path / "dir with space"
    weird_dir.mkdir()
    # Braces: Snakemake reads {cage} in an input path as a wildcard, and such a path
    # stopped the plan of every video.
    weird = weird_dir / "mäuse {cage} {3} 'quoted' $(touch pwned).mp4"
    shutil.copy(good, weird)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    header = "scorer,s,s,s\nbodyparts,snout,snout,snout\ncoords,x,y,likelihood\n"
    dlc = tmp_path / "short_DLC.csv"
    dlc.write_text(header + "".join(f"{f},40,60,0.9\n" for f in range(5)))
    weird_dlc = weird_dir / "mäuse {cage}DLC.csv"
    weird_dlc.write_text(header + "".join(f"{f},40,60,0.9\n" for f in range(20)))
    garbled = tmp_path / "garbled_DLC.csv"
    garbled.write_text("not,a\nDeepLabCut file")
    project.config["batch_size"] = 10
    project.sheet(
        [
            {"video": "good", "path": good, "points": "40,60", "prompt_frame": 0},
            {"video": "weird", "path": weird, "prompts": weird_dlc},
            {"video": "empty", "path": empty, "points": "40,60"},
            {"video": "missing", "path": tmp_path / "gone.mp4", "points": "40,60"},
            {"video": "shortdlc", "path": good, "prompts": dlc},
            {"video": "nodlc", "path": good, "prompts": tmp_path / "typoDLC.csv"},
            {"video": "garbled", "path": good, "prompts": garbled},
        ]
    )
    (project.path / "results" / "demo" / "batches" / "0000").mkdir(parents=True)
    run = project.snakemake("--keep-going", check=False)
    assert run.returncode != 0
    results = project.path / "results"
    assert (results / "good" / "masks.h5").is_file()
    assert (results / "weird" / "masks.h5").is_file()
    assert not list(project.path.rglob("pwned")) and not list(tmp_path.rglob("pwned"))
    logs = project.path / "logs"
    assert "video file is empty" in (logs / "extract_frames" / "empty.log").read_text()
    assert "video not found" in (logs / "extract_frames" / "missing.log").read_text()
    assert (
        "has 5 frame rows but the video has 20 frames"
        in (logs / "segment_batch" / "shortdlc" / "0000.log").read_text()
    )
    # A prompt file that cannot be read fails its video's first batch, not the plan.
    assert (
        f"prompt file not found: {tmp_path / 'typoDLC.csv'}"
        in (logs / "segment_batch" / "nodlc" / "0000.log").read_text()
    )
    assert "garbled_DLC.csv" in (logs / "segment_batch" / "garbled" / "0000.log").read_text()

    # The run failed, yet its summary accounts for exactly the sheet's videos: every batch
    # that finished, every planned batch that did not (missing, with its reason) and every
    # video whose frames were never extracted.
    summary = pd.read_csv(results / "memory_summary.csv", dtype={"batch": str})
    assert sorted(summary["video"].unique()) == sorted(
        ["good", "weird", "empty", "missing", "shortdlc", "nodlc", "garbled"]
    )
    done = summary[summary["status"] != "missing"]
    slots = done[["ok", "skipped_oom", "no_prompt", "empty"]].sum(axis=1)
    assert (slots == done["frames"] * done["objects"]).all()
    assert done.groupby("video")["frames"].sum().to_dict() == {"good": 20, "weird": 20}
    missing = summary[summary["status"] == "missing"].fillna({"batch": ""})
    assert missing.groupby("video")["batch"].apply(list).to_dict() == {
        "empty": [""],
        "garbled": ["0000", "0001"],
        "missing": [""],
        "nodlc": ["0000", "0001"],
        "shortdlc": ["0000", "0001"],
    }
    keys = missing["video"] + "/" + missing["batch"]
    reasons = dict(zip(keys, missing["skip_reason"], strict=True))
    assert reasons["nodlc/0000"].startswith("prompt file not found")
    assert reasons["nodlc/0001"].startswith("did not run")
    assert "video file is empty" in reasons["empty/"]
    page = (results / "memory_report.html").read_text()
    assert "PARTIAL" in page.split("<h2>")[0]
    assert (results / "skipped.tsv").is_file()
    assert "sam2flow: 7 videos: 5 failed, 2 done" in run.log


@pytest.mark.parametrize(
    "override,key",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"memory": {"memory_threshold": 1.5}}, "memory_threshold"),
        ({"memory": {"max_gpu_memory_gb": -1}}, "max_gpu_memory_gb"),
        ({"memory": {"min_chunk": 0}}, "min_chunk"),
        ({"model": {"name": "sam3_huge"}}, "name"),
        ({"jpeg_quality": 101}, "jpeg_quality"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_config_violations_name_the_key(project, override, key):
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for section, value in override.items():
        if isinstance(value, dict):
            base[section].update(value)
        else:
            base[section] = value
    (project.path / "config" / "config.yaml").write_text(yaml.safe_dump(base))
    project.sheet([{"video": "v", "path": "v.mp4", "points": "1,1"}])
    out = project.snakemake("-n", check=False)
    line = one_line_error(out)
    assert line.startswith("sam2flow: error: config key ") and key in line
    if key == "name":  # the message lists the known models
        assert "sam2.1_hiera_tiny" in line and "sam2_hiera_large" in line


def one_line_error(out) -> str:
    """A failed run's one error line (no traceback); returns it."""
    assert out.returncode != 0
    assert "Traceback" not in out.log and 'File "' not in out.log, out.log[-3000:]
    lines = [line for line in out.log.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, out.log[-3000:]
    listed_in_troubleshooting(lines[0])
    return lines[0]


SHEETS = [
    ("name-not-allowed", "video\tpath\nbad name!\tv.mp4\n", ["row 2", "video", "not a name for"]),
    ("name-after-comments", "# mice\nvideo\tpath\n\nbad name!\tv.mp4\n", ["row 4", "video"]),
    ("cell-too-many", "video\tpath\nv\ta.mp4\t1,1\n", ["row 2 has 3 cells", "names 2"]),
    ("name-repeated", "video\tpath\nv\ta.mp4\nv\tb.mp4\n", ["'v' appears more than once"]),
    ("no-video-column", "name\tpath\nv\ta.mp4\n", ["lacks column(s) video"]),
    ("unknown-column", "video\tpath\tpoint\nv\ta.mp4\t1,1\n", ["unknown column(s) point"]),
    ("empty-path", "video\tpath\tpoints\nv\t\t1,1\n", ["row 2 has an empty video name or path"]),
    ("points-garbage", "video\tpath\tpoints\nv\ta.mp4\tx,y\n", ["row 2", "points"]),
    ("box-three-numbers", "video\tpath\tbox\nv\ta.mp4\t1,2,3\n", ["row 2", "box"]),
    (
        "prompt-frame-negative",
        "video\tpath\tpoints\tprompt_frame\nv\ta.mp4\t1,1\t-4\n",
        ["row 2", "prompt_frame"],
    ),
    ("sheet-missing", None, ["sample sheet not found"]),
]


@pytest.mark.parametrize("text,words", [c[1:] for c in SHEETS], ids=[c[0] for c in SHEETS])
def test_a_bad_sample_sheet_is_one_line_naming_it(project, text, words):
    sheet = project.path / "config" / "videos.tsv"
    if text is None:
        project.config["videos"] = "config/nowhere.tsv"
    else:
        sheet.write_text(text)
    out = project.snakemake("-n", check=False)
    line = one_line_error(out)
    assert ("nowhere.tsv" if text is None else "videos.tsv") in line
    for word in words:
        assert word in line, (word, line)


def test_summary_accounts_for_every_frame(project, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=30)
    project.config["batch_size"] = 20
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 25}])
    project.snakemake()
    summary = pd.read_csv(project.path / "results" / "memory_summary.csv")
    slots = summary[["ok", "skipped_oom", "no_prompt", "empty"]].sum(axis=1)
    assert (slots == summary["frames"] * summary["objects"]).all()
    assert summary["frames"].sum() == 30
    # The prompt is on frame 25: batch 0000 (frames 0-19) has none.
    assert summary.set_index("batch").loc[0, "no_prompt"] == 20
