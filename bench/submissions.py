"""Cluster submissions for one hour of video: a dry run through ``profiles/slurm``.

    python bench/submissions.py [--frames 108000] [--group 15]
    # -> bench/results/<date>-submissions-<frames>.json

An hour of 1080p at 30 fps is 108,000 frames: 270 batches at the default 400. Planning
the jobs does not need the decoded video: the video's lasting manifest
(``results/{video}/frames.json``, what extraction writes) is written for that many frames,
and the sample sheet points at a short stand-in file. Snakemake's dry run then lists every
job it would submit, with and without ``group_batches``, for batches that run on their
own (``carry: independent``) and for one click on frame 0 (``carry: auto``: a chain).
Local rules (the checkpoint fetch, ``all``) are not submissions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
LOCAL_RULES = {"fetch_checkpoint", "all", "total"}
BATCH_SIZE = 400  # config/config.yaml's default


def job_counts(log: str) -> dict[str, int]:
    """Jobs by rule, from the dry run's 'Job stats' table."""
    table = log.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def dry_run(work: Path, group: int, carry: str) -> dict:
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(work),
        "-n",
        "--profile",
        str(ROOT / "profiles" / "slurm"),
        "--config",
        f"group_batches={group}",
        f"carry={carry}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    log = out.stdout + out.stderr
    counts = job_counts(log)
    groups = len(re.findall(r"\] Group job ", log))
    in_groups = counts.get("segment_batch", 0) if groups else 0
    jobs = sum(n for rule, n in counts.items() if rule not in LOCAL_RULES)
    return {
        "group_batches": group,
        "carry": carry,
        "jobs": counts,
        "group_jobs": groups,
        "sbatch_submissions": jobs - in_groups + groups,
    }


def stand_in(work: Path, frames: int) -> None:
    """A project whose one video is planned as ``frames`` frames long."""
    (work / "config").mkdir()
    shutil.copy(ROOT / "config" / "config.yaml", work / "config" / "config.yaml")
    video = work / "hour.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    (work / "config" / "videos.tsv").write_text(
        "video\tpath\tpoints\tprompt_frame\nhour\thour.mp4\t10,10\t0\n"
    )
    batches = {
        f"{i:04d}": [i * BATCH_SIZE, min(frames, (i + 1) * BATCH_SIZE) - 1]
        for i in range(-(-frames // BATCH_SIZE))
    }
    listing = work / "results" / "hour" / "frames.json"
    listing.parent.mkdir(parents=True)
    manifest = {"video": "hour.mp4", "frames": frames, "batch_size": BATCH_SIZE}
    listing.write_text(json.dumps(manifest | {"batches": batches}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=108_000)
    parser.add_argument("--group", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stand_in(Path(tmp), args.frames)
        runs = [
            dry_run(Path(tmp), group, carry)
            for carry in ("independent", "auto")
            for group in (1, args.group)
        ]
    result = {
        "date": dt.date.today().isoformat(),
        "frames": args.frames,
        "batch_size": BATCH_SIZE,
        "dry_runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{result['date']}-submissions-{args.frames}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    for run in runs:
        print(
            f"{args.frames} frames, carry {run['carry']}, group_batches "
            f"{run['group_batches']}: {run['sbatch_submissions']} sbatch submissions "
            f"({run['group_jobs']} group jobs)"
        )
    print(out)


if __name__ == "__main__":
    main()
