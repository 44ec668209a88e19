"""``sam2flow init``: a sample sheet from a folder of videos and DeepLabCut outputs, and a
printed next command that runs."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pandas as pd
import pytest
import yaml

from sam2flow.outputs import load_masks

from conftest import (
    ROOT,
    SCORER,
    SNAKEMAKE,
    Project,
    cut_video,
    dlc_predictions,
    listed_in_troubleshooting,
    sam2flow,
    shared_file,
)


def files(folder) -> list:
    return ["--sheet", folder / "s.tsv", "--local-config", folder / "l.yaml"]


def test_dlc_outputs_are_matched_by_their_names(tmp_path):
    for name in ["a b.mp4", "mouse1.avi", f"mouse1{SCORER}.h5", f"mouse1{SCORER}.csv"]:
        (tmp_path / name).touch()
    (tmp_path / f"ratDLC_{SCORER}.csv").touch()
    out = sam2flow("init", tmp_path, *files(tmp_path), "--config", "none.yaml")
    sheet = pd.read_csv(tmp_path / "s.tsv", sep="\t", dtype=str).fillna("")
    assert sheet.columns.tolist() == ["video", "path", "prompts"] + [
        "points",
        "box",
        "mask",
        "prompt_frame",
    ]
    assert sheet["video"].tolist() == ["a_b", "mouse1"]  # a name the workflow accepts
    assert sheet["prompts"].tolist() == ["", str(tmp_path / f"mouse1{SCORER}.csv")]
    assert "a b.mp4: no DeepLabCut file" in out.stdout
    assert f"ratDLC_{SCORER}.csv: a DeepLabCut file without a matching video" in out.stdout
    assert "mouse1.avi: using" not in out.stdout  # its .h5 twin is not a competitor


@pytest.mark.parametrize("given", ["missing", "file"])
def test_a_dlc_folder_that_is_not_one_is_an_error_before_anything_is_written(tmp_path, given):
    """A typo in --dlc (or a file named instead of its folder) would leave every video
    without its DeepLabCut file, each warned of as if the lab had none."""
    (tmp_path / "v.mp4").touch()
    (tmp_path / f"v{SCORER}.csv").touch()
    dlc = tmp_path / ("predictons" if given == "missing" else f"v{SCORER}.csv")
    out = sam2flow("init", tmp_path, *files(tmp_path), "--dlc", dlc, check=False)
    assert out.returncode == 2 and not (tmp_path / "s.tsv").exists()
    message = out.stderr.strip().splitlines()[-1].removeprefix("sam2flow init: error: ")
    assert message == (
        f"--dlc names no folder: {dlc}: give the folder that holds the DeepLabCut .csv/.h5 files"
    )
    listed_in_troubleshooting(message)


def test_an_existing_sheet_is_kept_unless_forced(tmp_path):
    (tmp_path / "v.mp4").touch()
    (tmp_path / "s.tsv").write_text("mine")
    out = sam2flow("init", tmp_path, *files(tmp_path), check=False)
    assert out.returncode == 2 and "file exists: " + str(tmp_path / "s.tsv") in out.stderr
    assert (tmp_path / "s.tsv").read_text() == "mine" and not (tmp_path / "l.yaml").exists()
    sam2flow("init", tmp_path, *files(tmp_path), "--force")
    assert (tmp_path / "s.tsv").read_text().startswith("video\tpath\tprompts")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_each_video_is_checked_and_what_is_wrong_is_a_warning_naming_it(tmp_path):
    """A good video, one cut short (its index at the front: 60 % of the file), an empty
    file, a still image and a text file named like videos: every one gets its row, the
    four bad ones a warning line each, and init still ends well."""
    import cv2
    import numpy as np

    from conftest import write_video

    good = write_video(tmp_path / "good.mp4", frames=30)
    full = tmp_path / "full" / "full.mp4"
    full.parent.mkdir()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30"]
        + ["-frames:v", "200", "-c:v", "libx264", "-movflags", "+faststart", str(full)],
        check=True,
    )
    data = full.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    (tmp_path / "empty.mp4").touch()
    cv2.imwrite(str(tmp_path / "still.png"), np.full((40, 60, 3), 90, np.uint8))
    (tmp_path / "still.png").rename(tmp_path / "still.mp4")
    (tmp_path / "notes.avi").write_text("minutes of the lab meeting\n" * 50)
    out = sam2flow("init", tmp_path, *files(tmp_path), "--config", "none.yaml")
    sheet = pd.read_csv(tmp_path / "s.tsv", sep="\t", dtype=str)
    assert sorted(sheet["video"]) == ["cut", "empty", "good", "notes", "still"]
    warned = [line for line in out.stdout.splitlines() if line.startswith("warning: ")]
    about = {name: [w for w in warned if f"{tmp_path / name}:" in w] for name in sheet["path"]}
    assert about[str(good)] == []
    assert " of the 200 frames its container declares are in the file" in about[
        str(tmp_path / "cut.mp4")][0]  # fmt: skip
    assert "video file is empty (0 bytes)" in about[str(tmp_path / "empty.mp4")][0]
    assert "a still image (png), not a video" in about[str(tmp_path / "still.mp4")][0]
    assert "cannot open video" in about[str(tmp_path / "notes.avi")][0]
    for w in warned:
        if "frames its container declares" in w:
            listed_in_troubleshooting(w.removeprefix("warning: "))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_init_on_real_videos_then_the_printed_command_runs_to_the_end(tmp_path):
    """bedroom.mp4 (no DeepLabCut file) and the first 60 frames of m3v1mp4.mp4 with a
    prediction pair named like DeepLabCut's; the printed random-weights command runs."""
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "bedroom.mp4").symlink_to(shared_file("bedroom.mp4"))
    cut_video(shared_file("m3v1mp4.mp4"), folder / "m3v1mp4.mp4", 60)
    dlc_predictions(folder, "m3v1mp4", 60)
    project = Project(tmp_path / "project")
    sheet = project.path / "config" / "videos.tsv"
    config = project.path / "config" / "config.yaml"
    local = project.path / "config" / "local.yaml"
    out = sam2flow("init", folder, "--sheet", sheet, "--config", config, "--local-config", local)
    rows = pd.read_csv(sheet, sep="\t", dtype=str).fillna("").set_index("video")
    assert rows.loc["m3v1mp4", "prompts"] == str(folder / f"m3v1mp4{SCORER}.csv")
    assert rows.loc["bedroom", "prompts"] == ""
    assert "warning: bedroom.mp4: no DeepLabCut file" in out.stdout
    command = [line for line in out.stdout.splitlines() if line.startswith("next: snakemake")]
    assert len(command) == 1, out.stdout
    assert yaml.safe_load(local.read_text())["model"] == {"weights": "random", "image_size": 256}
    args = shlex.split(command[0].removeprefix("next: "))[1:]
    run = subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(project.path), *args],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    results = project.path / "results"
    frames, objects, _ = load_masks(results / "m3v1mp4" / "masks.h5")
    assert frames.tolist() == list(range(60)) and objects.tolist() == [1]
    summary = pd.read_csv(results / "memory_summary.csv").set_index("video")
    assert summary.loc["m3v1mp4", "no_prompt"] == 0
    assert summary.loc["bedroom", "no_prompt"] == 200
