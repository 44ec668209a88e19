"""What a group of batches costs in one process per batch against one worker per group.

    python bench/group_process.py [BATCHES] [FRAMES] [IMAGE_SIZE]   # default 3 20 1024

The first BATCHES x FRAMES frames of ``../shared/data/bedroom.mp4`` are extracted in
batches of FRAMES; each batch is segmented from SAM 2's reference click (random weights,
the tiny model, the CPU) twice: as the workflow does without grouping (a new Python process
per batch: ``sam2flow segment``) and through one worker (``sam2flow.worker``, started by the
first batch, as ``group_process: true`` does). Wall seconds per batch and in all; the masks
of both are compared. Writes ``bench/results/DATE-group-process.json``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sam2flow.extract import extract_batches
from sam2flow.memory import GuardConfig
from sam2flow.models import ModelOptions
from sam2flow.prompts import PromptOptions
from sam2flow.worker import segment_in_worker, worker_address

ROOT = Path(__file__).resolve().parent
VIDEO = ROOT.parent.parent / "shared" / "data" / "bedroom.mp4"
CLICK = "210,350"


def main() -> None:
    batches, frames, size = (
        int(a) for a in (sys.argv[1:] + ["3", "20", "1024"][len(sys.argv) - 1 :])
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # The video's first frames only: extract all, keep the batches asked for.
        extract_batches(VIDEO, tmp / "frames", batch_size=frames)
        names = [f"{i:04d}" for i in range(batches)]
        own = []
        for name in names:
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sam2flow.cli",
                    "segment",
                    "--frames",
                    str(tmp / "frames" / name),
                ]
                + ["--out", str(tmp / "own" / name), "--point", CLICK, "--weights", "random"]
                + ["--image-size", str(size), "--device", "cpu", "--disable-memory-monitoring"]
                + ["--disable-adaptive-batch-size"],
                check=True,
                capture_output=True,
            )
            own.append(time.perf_counter() - started)
        model = ModelOptions(weights="random", image_size=size, device="cpu")
        address = worker_address(f"bench-{os.getpid()}", model, tmp)
        worker = []
        for name in names:
            started = time.perf_counter()
            segment_in_worker(
                address,
                30,
                last=name == names[-1],
                frames_dir=tmp / "frames" / name,
                out_dir=tmp / "worker" / name,
                prompt=PromptOptions(points=CLICK),
                model=model,
                memory=GuardConfig(monitoring=False, adaptive_batch_size=False),
            )
            worker.append(time.perf_counter() - started)
        same = all(
            (tmp / "own" / n / "masks.npz").read_bytes()
            == (tmp / "worker" / n / "masks.npz").read_bytes()
            for n in names
        )
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU",
        "batches": batches,
        "frames_per_batch": frames,
        "image_size": size,
        "model": "sam2.1_hiera_tiny, random weights",
        "seconds_per_batch_own_process": [round(s, 2) for s in own],
        "seconds_per_batch_worker": [round(s, 2) for s in worker],
        "seconds_own_process": round(sum(own), 2),
        "seconds_worker": round(sum(worker), 2),
        "masks_identical": same,
    }
    print(json.dumps(result, indent=1))
    out = ROOT / "results" / f"{result['date']}-group-process.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
