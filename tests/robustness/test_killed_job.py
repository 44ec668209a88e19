"""A run killed with SIGKILL half-way: the next run redoes only the interrupted batch."""

import os
import signal
import subprocess
import time

import psutil

from conftest import Project, jobs_run, listed_in_troubleshooting, write_video


def start(project: Project) -> subprocess.Popen:
    env = dict(os.environ, TQDM_DISABLE="1")
    return subprocess.Popen(
        project.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )


def test_sigkill_half_way_then_only_that_batch_is_redone(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=80)
    projects = {}
    for name in ("killed", "clean"):
        projects[name] = Project(tmp_path / name)
        projects[name].config["batch_size"] = 40
        projects[name].config["carry"] = "chained"
        projects[name].sheet([{"video": "v", "path": video, "points": "40,60", "prompt_frame": 0}])
    killed = projects["killed"]
    proc = start(killed)
    second_log = killed.path / "logs" / "segment_batch" / "v" / "0001.log"
    deadline = time.time() + 600
    # Kill everything (a node failure) once the second batch is segmenting.
    while time.time() < deadline and proc.poll() is None:
        if second_log.exists() and "host memory given" in second_log.read_text():
            time.sleep(1)
            break
        time.sleep(0.2)
    for child in psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]:
        child.send_signal(signal.SIGKILL)  # jobs run in sessions of their own
    proc.wait()
    batch = killed.path / "results" / "v" / "batches"
    assert (batch / "0000" / "memory.json").is_file()
    assert not (batch / "0001" / "memory.json").exists(), "killed before finishing"

    locked = killed.snakemake(check=False)  # the killed run could not release its lock
    assert locked.returncode != 0
    listed_in_troubleshooting(
        next(line for line in locked.log.splitlines() if "cannot be locked" in line)
    )
    killed.snakemake("--unlock")
    again = killed.snakemake("--rerun-incomplete")
    assert jobs_run(again.log, "segment_batch") == ["video=v, batch=0001"]

    projects["clean"].snakemake()
    clean = projects["clean"].path / "results" / "v" / "batches"
    for name in ("masks.npz", "frames.csv"):
        for b in ("0000", "0001"):
            assert (batch / b / name).read_bytes() == (clean / b / name).read_bytes(), (b, name)
