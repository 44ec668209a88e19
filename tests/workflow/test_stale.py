"""A lab's ordinary changes between runs never keep stale masks: a new batch size, a video
or a prompt file replaced in place (even by a copy with an older modification time), a
truncated copy replaced by the full one, a batch's folder deleted by hand."""

import json
import os
import shutil

import cv2
import numpy as np

from sam2flow.maskfile import describe, read_masks

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


def replace_with_older(path, content: bytes) -> None:
    """``path`` overwritten by ``content`` whose modification time is an hour earlier, as
    ``cp -p`` of a file saved before leaves it."""
    old = path.stat().st_mtime - 3600
    path.write_bytes(content)
    os.utime(path, (old, old))


def dlc_file(path, x: int, y: int, frames: int):
    rows = ["scorer,s,s,s", "bodyparts,snout,snout,snout", "coords,x,y,likelihood"]
    path.write_text("\n".join(rows + [f"{f},{x},{y},0.9" for f in range(frames)]) + "\n")
    return path


def mask_png(path, rows: slice, cols: slice):
    mask = np.zeros((120, 160), np.uint8)
    mask[rows, cols] = 255
    cv2.imwrite(str(path), mask)
    return path


def test_a_prompt_file_replaced_in_place_by_an_older_copy_is_segmented_again(project, tmp_path):
    """A DeepLabCut file with corrected labels, a mask drawn again: the sheet names the same
    paths, but the masks must come from the files there now."""
    video = write_video(tmp_path / "v.mp4", frames=4)
    dlc = dlc_file(tmp_path / "d.csv", 40, 60, frames=4)
    mask = mask_png(tmp_path / "m.png", slice(10, 50), slice(10, 50))
    project.config["batch_size"] = 4
    project.sheet(
        [
            {"video": "d", "path": video, "prompts": dlc},
            {"video": "m", "path": video, "mask": mask, "prompt_frame": 0},
        ]
    )
    project.snakemake()
    before = {v: read_masks(project.path / "results" / v / "masks.h5")[2] for v in "dm"}

    replace_with_older(dlc, dlc_file(tmp_path / "other.csv", 120, 90, frames=4).read_bytes())
    other = mask_png(tmp_path / "other.png", slice(60, 110), slice(90, 150))
    replace_with_older(mask, other.read_bytes())
    run = project.snakemake()
    assert jobs_run(run.log, "segment_batch") == ["video=d, batch=0000", "video=m, batch=0000"]
    for v in "dm":
        after = read_masks(project.path / "results" / v / "masks.h5")[2]
        assert not np.array_equal(after, before[v]), v
    assert "Nothing to be done" in project.snakemake().log


def test_a_checkpoint_trained_again_at_its_path_is_segmented_again(project, tmp_path, tiny_model):
    """A lab's fine-tuned weights, named by path in the config and trained again there."""
    import torch

    state = tiny_model.predictor.state_dict()
    checkpoint = tmp_path / "mice.pt"
    torch.save({"model": state}, checkpoint)
    video = write_video(tmp_path / "v.mp4", frames=4)
    project.config["batch_size"] = 4
    project.config["model"] |= {"weights": "checkpoint", "checkpoint": str(checkpoint)}
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    project.snakemake()
    before = read_masks(project.path / "results" / "v" / "masks.h5")[2]

    trained = {k: v + 0.05 if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"model": trained}, tmp_path / "trained.pt")
    replace_with_older(checkpoint, (tmp_path / "trained.pt").read_bytes())
    run = project.snakemake()
    assert jobs_run(run.log, "segment_batch") == ["video=v, batch=0000"]
    assert not np.array_equal(read_masks(project.path / "results" / "v" / "masks.h5")[2], before)


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
