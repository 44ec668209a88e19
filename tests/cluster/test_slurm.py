"""The SLURM profile against a real SLURM controller and node on this machine."""

import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest

from sam2flow.outputs import load_masks

from conftest import (
    ROOT,
    Project,
    RangeHandler,
    checkpoint_model,
    jobs_run,
    write_video,
)

pytestmark = pytest.mark.slurm

SLURM_ARGS = [
    "--profile",
    str(ROOT / "profiles" / "slurm"),
    "--workflow-profile",
    str(ROOT / "tests" / "cluster" / "profile"),
]


def one_cpu(project: Project) -> Project:
    """Each segment job asks SLURM for one CPU, so that two fit the 2-CPU test node at once
    (the local tests give a job both cores)."""
    project.config["resources"]["segment_batch"]["threads"] = 1
    return project


@pytest.fixture
def project(project) -> Project:
    return one_cpu(project)


def slurm_job(job_id: int) -> str:
    """SLURM's own record of a job (kept MinJobAge seconds after it ends)."""
    return subprocess.run(
        ["scontrol", "show", "job", str(job_id)], capture_output=True, text=True
    ).stdout


def submissions(log: str) -> dict[int, str]:
    """SLURM's records of every job this run submitted, by SLURM job id."""
    return {
        job_id: slurm_job(job_id) for job_id in map(int, set(re.findall(r"SLURM jobid (\d+)", log)))
    }


def segment_submissions(log: str) -> dict[int, str]:
    """SLURM records of every segment_batch submission (a job or a group of batches)."""
    return {
        job_id: record
        for job_id, record in submissions(log).items()
        if "segment_batch" in record or "group_segment_" in record
    }


def memories(records: dict[int, str]) -> list[int]:
    """The memory (MB) each submission asked for, smallest first."""
    return sorted(int(re.search(r"MinMemoryNode=(\d+)M", r).group(1)) for r in records.values())


def dlc_every_frame(path, frames: int):
    """A DeepLabCut file with a confident point on every frame: every batch has its own
    prompt, so no batch depends on another (what a group must join by itself)."""
    header = "scorer,s,s,s\nbodyparts,snout,snout,snout\ncoords,x,y,likelihood\n"
    path.write_text(header + "".join(f"{f},40,60,0.9\n" for f in range(frames)))
    return path


def test_demo_through_the_slurm_profile_matches_a_local_run(slurm, project, tmp_path):
    project.use_demo(frames=30, batch_size=15)
    # The config is the one source of resources: these values reach the submitted jobs.
    project.config["resources"]["segment_batch"].update(gpu=1, mem_mb=1500, runtime=12)
    run = project.snakemake(*SLURM_ARGS)
    records = segment_submissions(run.log)
    assert len(records) == 2, run.log[-3000:]
    for record in records.values():
        assert re.search(r"(TresPerNode|TresPerJob)=\S*gpu:1", record), record
        assert "MinMemoryNode=1500M" in record and "TimeLimit=00:12:00" in record, record

    local = one_cpu(Project(tmp_path / "local"))
    local.use_demo(frames=30, batch_size=15)
    local.snakemake()
    a = load_masks(project.path / "results/demo/masks.h5")
    b = load_masks(local.path / "results/demo/masks.h5")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert (a[2] == b[2]).mean() > 0.999
    ta = pd.read_csv(project.path / "results/demo/tracks.csv")
    tb = pd.read_csv(local.path / "results/demo/tracks.csv")
    assert ta[["frame", "object", "status"]].equals(tb[["frame", "object", "status"]])


def test_failed_first_attempt_is_retried_with_more_memory(slurm, project, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=20)
    project.config["batch_size"] = 20
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    # Attempt 1 gets 600 MB, below what the batch needs (~1 GB): it fails at once and
    # Snakemake resubmits it with attempt 2's 1200 MB.
    project.config["resources"]["segment_batch"]["mem_mb"] = 600  # x attempt
    run = project.snakemake(*SLURM_ARGS)
    records = segment_submissions(run.log)
    assert memories(records) == [600, 1200], run.log[-3000:]
    log = (project.path / "logs/segment_batch/v/0000.log").read_text()
    assert (project.path / "results/v/batches/0000/memory.json").is_file(), log


def test_keep_going_then_only_the_failed_batch_is_submitted(slurm, project, tmp_path):
    good = write_video(tmp_path / "good.mp4", frames=20)
    bad = write_video(tmp_path / "bad.mp4", frames=20)
    dlc = tmp_path / "bad_DLC.csv"
    header = "scorer,s,s,s\nbodyparts,snout,snout,snout\ncoords,x,y,likelihood\n"
    dlc.write_text(header + "".join(f"{f},40,60,0.9\n" for f in range(15)))  # 15 != 20 rows
    project.config["batch_size"] = 20
    project.sheet(
        [
            {"video": "good", "path": good, "points": "40,60", "prompt_frame": 0},
            {"video": "bad", "path": bad, "prompts": dlc},
        ]
    )
    first = project.snakemake(*SLURM_ARGS, check=False)
    assert first.returncode != 0
    assert (project.path / "results/good/masks.h5").is_file(), "keep-going finished the good video"
    assert not (project.path / "results/bad/batches/0000/memory.json").exists()
    log = (project.path / "logs/segment_batch/bad/0000.log").read_text()
    assert "has 15 frame rows but the video has 20 frames" in log

    dlc.write_text(header + "".join(f"{f},40,60,0.9\n" for f in range(20)))
    second = project.snakemake(*SLURM_ARGS)
    assert jobs_run(second.log, "segment_batch") == ["video=bad, batch=0000"]
    assert len(segment_submissions(second.log)) == 1


def test_grouped_batches_share_jobs_and_the_checkpoint_is_fetched_once(
    slurm, project, tmp_path, checkpoint_server
):
    """group_batches: 3 puts 6 independent batches into 2 SLURM jobs, each segmenting its
    batches in one worker process that builds the model once; the checkpoint is fetched
    once, by the local rule, from the (local) HTTP server."""
    url, original, sha = checkpoint_server
    video = write_video(tmp_path / "v.mp4", frames=30)
    project.config["batch_size"] = 5
    project.config["group_batches"] = 3
    project.config["model"] = checkpoint_model(f"{url}/sam2.1_hiera_tiny.pt", sha)
    project.config["resources"]["segment_batch"].update(gpu=1, mem_mb=1500, runtime=12)
    prompts = dlc_every_frame(tmp_path / "vDLC.csv", 30)
    project.sheet([{"video": "v", "path": video, "prompts": prompts}])
    RangeHandler.ranges.clear()
    run = project.snakemake(*SLURM_ARGS)
    assert len(jobs_run(run.log, "segment_batch")) == 6
    groups = segment_submissions(run.log)
    assert len(groups) == 2, run.log[-3000:]
    # Both are queued at once: the gpu=1 limit is each job's own (scope local).
    # (In the order the log names them: the plugin may submit them in either order.)
    first, second = sorted(re.search(rf"SLURM jobid {g}\b", run.log).start() for g in groups)
    between = run.log[first:second]
    assert "Finished job" not in between and "Finished jobid" not in between, between
    for record in groups.values():
        # One GPU for the group; its three batches' runtimes add up; memory is the largest.
        assert re.search(r"(TresPerNode|TresPerJob)=\S*gpu:1\b", record), record
        assert "MinMemoryNode=1500M" in record and "TimeLimit=00:36:00" in record, record
    assert jobs_run(run.log, "fetch_checkpoint") == [""]
    assert len(RangeHandler.ranges) == 1, "one GET for the whole run"
    said = {}
    for batch in range(6):
        record = json.loads(
            (project.path / f"results/v/batches/{batch:04d}/memory.json").read_text()
        )
        assert record["status"] == "ok"
        log = (project.path / f"logs/segment_batch/v/{batch:04d}.log").read_text()
        said[batch] = re.search(r"in the group's worker \(pid (\d+)\): its batch (\d)", log)
        assert "the model built 1 time(s) there" in log, log[-2000:]
    # One worker process per group job, each building the model once for its 3 batches
    pids = [said[b].group(1) for b in range(6)]
    assert pids[0] == pids[1] == pids[2] != pids[3] == pids[4] == pids[5]
    assert [int(said[b].group(2)) for b in range(6)] == [1, 2, 3, 1, 2, 3]


def test_an_unrescued_batch_fails_and_its_retry_asks_for_more(slurm, project, tmp_path):
    """memory.fail_on_skip: a batch the guard could not rescue fails its SLURM job, and
    Snakemake resubmits it with attempt-scaled memory."""
    video = write_video(tmp_path / "v.mp4", frames=30)
    project.config["batch_size"] = 30
    project.config["memory"] = {"fail_on_skip": True, "adaptive_batch_size": False}
    project.config["resources"]["segment_batch"]["mem_mb"] = 1500
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    run = project.snakemake(*SLURM_ARGS, env={"SAM2FLOW_INJECT_OOM": "above=5"}, check=False)
    assert run.returncode != 0
    assert memories(segment_submissions(run.log)) == [1500, 3000], run.log[-3000:]
    log = (project.path / "logs/segment_batch/v/0000.log").read_text()
    assert "memory.fail_on_skip" in log


def test_a_batch_still_skipped_is_rerun_on_every_rerun_skipped(slurm, project, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=30)
    project.config["batch_size"] = 30
    project.config["memory"] = {"adaptive_batch_size": False}
    project.sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    small_gpu = {"SAM2FLOW_INJECT_OOM": "above=5"}  # below the 25-frame floor: skipped
    project.snakemake(*SLURM_ARGS, env=small_gpu)
    for reruns in (1, 2):
        run = project.snakemake(*SLURM_ARGS, "--config", "rerun_skipped=true", env=small_gpu)
        assert len(segment_submissions(run.log)) == 1, run.log[-3000:]
        skipped = pd.read_csv(project.path / "results/skipped.tsv", sep="\t")
        assert skipped[["video", "reruns"]].values.tolist() == [["v", reruns]]
