"""The workflow end to end: real Snakemake, real SAM 2 (random weights, 256, CPU)."""

import json
import re
import shutil
import subprocess
import time

import cv2
import numpy as np
import pandas as pd
import psutil
import pytest
import yaml

from sam2flow.outputs import load_masks

from conftest import (
    ROOT,
    SNAKEMAKE,
    RangeHandler,
    checkpoint_model,
    jobs_run,
    listed_in_troubleshooting,
    shared_file,
    write_video,
)


def test_demo_runs_end_to_end(project):
    project.use_demo(frames=30, batch_size=15)
    project.snakemake()
    out = project.path / "results"
    frames, objects, masks = load_masks(out / "demo" / "masks.h5")
    assert frames.tolist() == list(range(30)) and objects.tolist() == [1, 2]
    tracks = pd.read_csv(out / "demo" / "tracks.csv")
    assert len(tracks) == 60 and set(tracks["object"]) == {1, 2}
    cap = cv2.VideoCapture(str(out / "demo" / "overlay.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    assert cv2.imread(str(out / "demo" / "contact_sheet.png")) is not None
    summary = pd.read_csv(out / "memory_summary.csv")
    assert summary["batch"].tolist() == [0, 1] and (summary["status"] == "ok").all()
    html = (out / "memory_report.html").read_text()
    assert "<img" in html and "RANDOM WEIGHTS" in html
    assert not (out / "demo" / "frames").exists(), "frames are temp() by default"
    # The demo's video and predictions, made by the run itself, are the same files the
    # second time: nothing is redone.
    assert "Nothing to be done" in project.snakemake().log
    project.snakemake("--report", str(project.path / "report.html"))
    report = (project.path / "report.html").read_text(errors="replace")
    assert "memory_report.html" in report and "contact_sheet.png" in report
    assert "overlay.mp4" in report and "video/mp4" in report  # the overlay is embedded
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries"]
        + ["stream=codec_name,pix_fmt", "-of", "csv=p=0", str(out / "demo" / "overlay.mp4")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.split() == ["h264,yuv420p"]  # what browsers play


@pytest.mark.slow
def test_bedroom_video_end_to_end(project):
    video = shared_file("bedroom.mp4")
    project.config["batch_size"] = 100  # default carry: batch 1 starts from batch 0's end
    project.sheet([{"video": "bedroom", "path": video, "points": "210,350", "prompt_frame": 0}])
    project.snakemake()
    frames, _, masks = load_masks(project.path / "results" / "bedroom" / "masks.h5")
    assert frames.tolist() == list(range(200)) and masks.shape[2:] == (540, 960)
    summary = pd.read_csv(project.path / "results" / "memory_summary.csv")
    assert summary["frames"].sum() == 200 and summary["no_prompt"].sum() == 0


def test_recovered_and_skipped_batches_then_rerun_only_the_skipped(project, tmp_path):
    a = write_video(tmp_path / "a.mp4", frames=60)
    b = write_video(tmp_path / "b.mp4", frames=30)
    project.config["batch_size"] = 60
    project.sheet(
        [
            {"video": "a", "path": a, "points": "40,60", "prompt_frame": 0},
            {"video": "b", "path": b, "points": "40,60", "prompt_frame": 0},
        ]
    )
    # Video a on a "GPU" that fits 30 frames: recovered in chunks.
    project.snakemake("results/a/masks.h5", env={"SAM2FLOW_INJECT_OOM": "above=30"})
    # Video b on one that fits 5: below the 25-frame floor, so skipped.
    second = project.snakemake(env={"SAM2FLOW_INJECT_OOM": "above=5"})
    # a's frames were temp() and are gone: its finished batch does not bring them back.
    assert jobs_run(second.log, "extract_frames") == ["video=b"]
    summary = pd.read_csv(project.path / "results" / "memory_summary.csv").set_index("video")
    assert summary.loc["a", "status"] == "recovered" and summary.loc["a", "attempts"] == 3
    assert summary.loc["b", "status"] == "skipped" and summary.loc["b", "skipped_oom"] == 30
    skipped = pd.read_csv(project.path / "results" / "skipped.tsv", sep="\t")
    assert skipped[["video", "first_frame", "last_frame"]].values.tolist() == [["b", 0, 29]]

    # A rerun on the same small "GPU": still skipped, and rerun again when asked again.
    still = project.snakemake(
        "--config", "rerun_skipped=true", env={"SAM2FLOW_INJECT_OOM": "above=5"}
    )
    assert jobs_run(still.log, "segment_batch") == ["video=b, batch=0000"]
    skipped = pd.read_csv(project.path / "results" / "skipped.tsv", sep="\t")
    assert skipped[["video", "reruns"]].values.tolist() == [["b", 1]]
    rerun = project.snakemake("--config", "rerun_skipped=true")
    assert jobs_run(rerun.log, "segment_batch") == ["video=b, batch=0000"]
    assert jobs_run(rerun.log, "extract_frames") == ["video=b"]
    # ... which only wrote the manifest: the batch job decoded its own frames, by a seek.
    logs = project.path / "logs"
    assert "as extracted before" in (logs / "extract_frames" / "b.log").read_text()
    segment_log = (logs / "segment_batch" / "b" / "0000.log").read_text()
    assert "frames 0-29 decoded again (30 frames decoded, after a seek)" in segment_log
    summary = pd.read_csv(project.path / "results" / "memory_summary.csv").set_index("video")
    assert (
        summary.loc["b", "status"] == "ok"
        and summary.loc["b", "ok"] + summary.loc["b", "empty"] == 30
    )
    assert pd.read_csv(project.path / "results" / "skipped.tsv", sep="\t").empty
    record = json.loads((project.path / "results/b/batches/0000/memory.json").read_text())
    assert record["rerun_strategy"] == "offload#2"  # its second rerun
    # Offload from min_chunk (25); 30 frames make no second chunk of 25 or more: one chunk.
    assert [(a["level"], a["chunk_size"]) for a in record["attempts"]] == [("offload", 30)]
    # A later plain run has nothing left to do.
    again = project.snakemake()
    assert jobs_run(again.log, "segment_batch") == []
    assert np.asarray(load_masks(project.path / "results" / "b" / "masks.h5")[0]).size == 30


def test_chained_batches_carry_the_last_mask_forward(project, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=40)
    project.config["batch_size"] = 20
    project.config["carry"] = "chained"
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    project.snakemake()
    first = json.loads((project.path / "results/v/batches/0000/memory.json").read_text())
    second = json.loads((project.path / "results/v/batches/0001/memory.json").read_text())
    assert first["prompt_source"] == "config"
    assert second["prompt_frame"] == 19 and "carried from" in second["prompt_source"]
    assert "no_prompt" not in second["frame_status"]


def test_one_click_segments_every_batch_by_default(project, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=300)
    project.config["batch_size"] = 100
    project.sheet([{"video": "v", "path": video, "points": "40,60"}])  # frame 0
    project.snakemake()
    tracks = pd.read_csv(project.path / "results" / "v" / "tracks.csv")
    assert tracks["frame"].tolist() == list(range(300))
    assert set(tracks["status"]) <= {"ok", "empty"} and (tracks["status"] == "ok").any()
    sources = [
        json.loads((project.path / f"results/v/batches/{b}/memory.json").read_text())
        for b in ("0000", "0001", "0002")
    ]
    assert [r["prompt_frame"] for r in sources] == [0, 99, 199]


def test_a_chain_broken_by_a_skip_is_listed_and_mended_by_a_rerun(project, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=60)
    project.config["batch_size"] = 30
    project.config["memory"] = {"rerun_strategy": "same", "adaptive_batch_size": False}
    project.sheet([{"video": "v", "path": video, "points": "40,60"}])
    project.snakemake(env={"SAM2FLOW_INJECT_OOM": "above=10"})  # no level fits: skipped
    skipped = pd.read_csv(project.path / "results" / "skipped.tsv", sep="\t")
    assert skipped[["batch", "first_frame", "last_frame"]].values.tolist() == [
        [0, 0, 29],
        [1, 30, 59],
    ]
    assert "last frame 29" in skipped["reason"].iloc[1]

    project.snakemake("--config", "rerun_skipped=true")
    summary = pd.read_csv(project.path / "results" / "memory_summary.csv")
    assert (summary["status"] == "ok").all()
    assert pd.read_csv(project.path / "results" / "skipped.tsv", sep="\t").empty
    reference = type(project)(tmp_path / "reference")
    reference.config["batch_size"] = 30
    reference.sheet([{"video": "v", "path": video, "points": "40,60"}])
    reference.snakemake()
    mended = load_masks(project.path / "results" / "v" / "masks.h5")[2]
    np.testing.assert_array_equal(mended, load_masks(reference.path / "results/v/masks.h5")[2])


def test_independent_batches_without_a_prompt_are_no_prompt(project, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=40)
    project.config["batch_size"] = 20
    project.config["carry"] = "independent"
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    project.snakemake("results/v/batches/0001/memory.json")
    second = json.loads((project.path / "results/v/batches/0001/memory.json").read_text())
    assert second["frame_status"] == {"no_prompt": 20}


def test_lint_and_format_are_clean():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    bindir = Path(sys.executable).parent
    fmt = subprocess.run(
        [str(bindir / "snakefmt"), "--check", "."], cwd=root, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    lint = subprocess.run(
        [str(bindir / "snakemake"), "--lint", "--configfile", "config/demo.yaml"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, (
        lint.stdout + lint.stderr
    )


def test_the_checkpoint_is_fetched_once_for_every_batch(project, tmp_path, checkpoint_server):
    url, original, sha = checkpoint_server
    video = write_video(tmp_path / "v.mp4", frames=30)
    project.config["batch_size"] = 10  # three segment_batch jobs share one download
    project.config["model"] = checkpoint_model(f"{url}/sam2.1_hiera_tiny.pt", sha)
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    RangeHandler.ranges.clear()
    run = project.snakemake()
    assert jobs_run(run.log, "fetch_checkpoint") == [""]
    assert len(jobs_run(run.log, "segment_batch")) == 3
    assert len(RangeHandler.ranges) == 1, "one GET for the whole run"
    fetched = project.path / "resources" / "checkpoints" / "sam2.1_hiera_tiny.pt"
    assert fetched.read_bytes() == original.read_bytes()
    for batch in ("0000", "0001", "0002"):
        record = json.loads((project.path / f"results/v/batches/{batch}/memory.json").read_text())
        assert record["weights"].endswith("resources/checkpoints/sam2.1_hiera_tiny.pt")


def test_offline_the_checkpoint_job_fails_alone_and_at_once(project, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=20)
    project.config["model"] = checkpoint_model("http://127.0.0.1:9/sam2.1_hiera_tiny.pt")
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    run = project.snakemake(check=False)
    assert run.returncode != 0 and jobs_run(run.log, "segment_batch") == []
    log = (project.path / "logs" / "fetch_checkpoint.log").read_text()
    assert "cannot download checkpoint http://127.0.0.1:9/sam2.1_hiera_tiny.pt" in log
    listed_in_troubleshooting(next(line for line in log.splitlines() if "cannot download" in line))


def test_fail_on_skip_fails_the_job_so_that_it_is_retried(project, tmp_path):
    """memory.fail_on_skip: a batch the guard could not rescue fails its job after writing
    its record; the executor's retry (attempt 2, with attempt-scaled resources) runs it."""
    video = write_video(tmp_path / "v.mp4", frames=30)
    project.config["batch_size"] = 30
    project.config["memory"] = {"fail_on_skip": True, "adaptive_batch_size": False}
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    run = project.snakemake("--retries", "1", env={"SAM2FLOW_INJECT_OOM": "above=5"}, check=False)
    assert run.returncode != 0
    assert jobs_run(run.log, "segment_batch") == ["video=v, batch=0000"] * 2, run.log[-3000:]
    log = (project.path / "logs" / "segment_batch" / "v" / "0000.log").read_text()
    assert "batch 0000 skipped frames 0-29" in log and "memory.fail_on_skip" in log
    assert "mem_mb=4000" in log  # attempt 2 of 2000 x attempt


def test_settings_that_cannot_change_masks_do_not_rerun_finished_batches(project, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=20)
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    project.snakemake()
    project.config["memory"] = {"monitoring": False, "memory_threshold": 0.5}
    again = project.snakemake()
    assert jobs_run(again.log, "segment_batch") == []
    project.config["memory"]["min_chunk"] = 10  # chunking can change masks: redone
    changed = project.snakemake()
    assert jobs_run(changed.log, "segment_batch") == ["video=v, batch=0000"]


def test_a_second_config_file_sets_what_every_slurm_job_asks_for(project, tmp_path):
    """`--configfile config/demo.yaml big.yaml` through profiles/slurm: the dry run plans
    every segment_batch job with big.yaml's memory and runtime. The config is the one
    source of resources; the profile adds only what is cluster-specific."""
    shutil.copy(ROOT / "config" / "demo.tsv", project.path / "config" / "demo.tsv")
    big = tmp_path / "big.yaml"
    big.write_text(
        yaml.safe_dump({"resources": {"segment_batch": {"mem_mb": 64000, "runtime": 600}}})
    )
    base = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(project.path)]
    configs = ["--configfile", str(ROOT / "config" / "demo.yaml"), str(big)]
    # Extraction first (locally), so that the batches are known to the dry run.
    subprocess.run(
        [*base, "results/demo/frames", "--cores", "2", *configs], check=True, capture_output=True
    )
    profile = ["--profile", str(ROOT / "profiles" / "slurm")]
    dry = subprocess.run([*base, "-n", *profile, *configs], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    jobs = [b for b in re.split(r"\n(?=rule )", dry.stdout) if b.startswith("rule segment_batch:")]
    assert len(jobs) == 3, dry.stdout[-3000:]  # 120 demo frames in batches of 40
    for job in jobs:
        resources = re.search(r"resources: (.*)", job).group(1)
        assert "mem_mb=64000" in resources and "runtime=600" in resources, resources
        assert "cpus_per_gpu=4" in resources  # and the profile's own keys
        assert "slurm_partition" not in resources  # SLURM's default unless a user names one
    # merge_video's runtime follows the video: 60 min + 15 per 10,000 frames (120: 1).
    merge = re.search(r"rule merge_video:.*?resources: ([^\n]*)", dry.stdout, re.S).group(1)
    assert "runtime=61" in merge, merge


def test_a_groups_batches_are_segmented_by_one_process_that_builds_the_model_once(project):
    project.use_demo(frames=30, batch_size=10)
    project.config["group_batches"] = 3
    project.snakemake()
    said = []
    for batch in ("0000", "0001", "0002"):
        log = (project.path / f"logs/segment_batch/demo/{batch}.log").read_text()
        found = re.search(
            r"in the group's worker \(pid (\d+)\): its batch (\d), the model built (\d)", log
        )
        assert found, log[-1500:]
        said.append(found.groups())
        assert f"batch {batch}: ok" in log  # the worker's own lines are in the job's log
    assert [s[0] for s in said] == [said[0][0]] * 3
    assert [(s[1], s[2]) for s in said] == [("1", "1"), ("2", "1"), ("3", "1")]
    summary = pd.read_csv(project.path / "results/memory_summary.csv")
    assert (summary["status"] == "ok").all() and len(summary) == 3
    # It ended after the group's last batch, not an idle timeout (120 s) later.
    assert ended(int(said[0][0]), within=30)


def ended(pid: int, within: float) -> bool:
    """Whether process ``pid`` ends (or is a zombie no one reaped) within ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)
    return False
