"""A lab's ordinary changes between runs never keep stale masks: a new batch size, a video
replaced in place (even by a copy with an older modification time), a truncated copy
replaced by the full one, a batch's folder deleted by hand."""

import json
import os
import shutil

from sam2flow.maskfile import describe

from conftest import jobs_run, write_video


def records(project, video="v"):
    """Each batch's record: batch name -> [first frame, last frame]."""
    found = sorted((project.path / "results" / video / "batches").glob("*/memory.json"))
    return {
        p.parent.name: [json.loads(p.read_text())[k] for k in ("first_frame", "last_frame")]
        for p in found
    }


def batches_run(log: str) -> list[str]:
    """The batches whose segment_batch jobs a run scheduled."""
    return sorted(w.split("batch=")[1].split(",")[0] for w in jobs_run(log, "segment_batch"))


def test_a_new_batch_size_redoes_every_batch_on_its_new_frames(project, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=12)
    project.config["batch_size"] = 6
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    project.snakemake()
    assert records(project) == {"0000": [0, 5], "0001": [6, 11]}

    project.config["batch_size"] = 4
    run = project.snakemake()
    assert batches_run(run.log) == ["0000", "0001", "0002"]
    assert records(project) == {"0000": [0, 3], "0001": [4, 7], "0002": [8, 11]}
    frames, _, _, _ = describe(project.path / "results" / "v" / "masks.h5")
    assert frames.tolist() == list(range(12))


def test_a_video_replaced_in_place_by_an_older_copy_is_segmented_again(project, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=8)
    project.config["batch_size"] = 4
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    project.snakemake()
    assert describe(project.path / "results" / "v" / "masks.h5")[3] == 160

    old = video.stat().st_mtime - 3600
    write_video(tmp_path / "other.mp4", frames=8, width=200)
    shutil.copyfile(tmp_path / "other.mp4", video)  # same name, other content, older clock
    os.utime(video, (old, old))
    run = project.snakemake()
    assert batches_run(run.log) == ["0000", "0001"]
    _, _, height, width = describe(project.path / "results" / "v" / "masks.h5")
    assert (height, width) == (120, 200)  # the new video's frames, not the old masks


def test_a_truncated_copy_replaced_by_the_full_video_is_segmented_whole(project, tmp_path):
    full = write_video(tmp_path / "full.mp4", frames=10)
    video = write_video(tmp_path / "v.mp4", frames=4)  # the copy cut short
    project.config["batch_size"] = 4
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    project.snakemake()
    assert records(project) == {"0000": [0, 3]}

    shutil.copyfile(full, video)
    run = project.snakemake()
    assert batches_run(run.log) == ["0000", "0001", "0002"]
    assert records(project) == {"0000": [0, 3], "0001": [4, 7], "0002": [8, 9]}
    assert describe(project.path / "results" / "v" / "masks.h5")[0].tolist() == list(range(10))


def test_redoing_a_batch_redoes_the_batches_chained_after_it_and_no_other(project, tmp_path):
    """The README's command to redo one batch (its folder deleted or not): the batches that
    start from its last masks are redone too, the others are not."""
    video = write_video(tmp_path / "v.mp4", frames=12)
    project.config["batch_size"] = 4
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    project.snakemake()
    shutil.rmtree(project.path / "results" / "v" / "batches" / "0001")
    run = project.snakemake("--forcerun", "results/v/batches/0001/memory.json")
    assert batches_run(run.log) == ["0001", "0002"]
    assert records(project) == {"0000": [0, 3], "0001": [4, 7], "0002": [8, 11]}


def test_a_failed_merge_keeps_the_good_earlier_one(project, tmp_path):
    """A batch's masks.npz damaged after a finished run: the merge fails with one line
    naming it, and masks.h5, tracks.csv, the overlay and the contact sheet of the earlier
    run are still there, byte for byte."""
    video = write_video(tmp_path / "v.mp4", frames=8)
    project.config["batch_size"] = 4
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    project.snakemake()
    results = project.path / "results" / "v"
    merged = ["masks.h5", "tracks.csv", "overlay.mp4", "contact_sheet.png"]
    before = {name: (results / name).read_bytes() for name in merged}

    damaged = results / "batches" / "0001" / "masks.npz"
    damaged.write_bytes(damaged.read_bytes()[:100])  # cut short: a full disk, a bad copy
    run = project.snakemake("--forcerun", "merge_video", check=False)
    assert run.returncode != 0
    merge_log = (project.path / "logs" / "merge_video" / "v.log").read_text()
    assert str(damaged) in merge_log or "0001/masks.npz" in merge_log, merge_log[-2000:]
    assert {name: (results / name).read_bytes() for name in merged} == before
