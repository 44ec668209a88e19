"""Frames per second that ``FrameSource`` hands to the model, by decoding threads.

    python bench/frame_source.py [IMAGE_SIZE] [FRAMES]   # default 1024 100

The first FRAMES frames of ``../shared/data/bedroom.mp4`` are extracted once (JPEG, as the
workflow does); then a source over them is read front to back, as fast as it answers (no
model: what a GPU would wait for), with 1, 2 and every available thread, ``sam2`` decoder
(stock SAM 2's tensors). Medians of 3 runs; writes ``bench/results/DATE-frame-source.json``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from sam2flow.extract import extract_batches
from sam2flow.frame_folders import frame_paths
from sam2flow.frame_source import FrameSource

ROOT = Path(__file__).resolve().parent


def rate(paths: list[Path], size: int, threads: int) -> float:
    src = FrameSource(paths, size, threads=threads)
    try:
        started = time.perf_counter()
        for i in range(len(paths)):
            src[i]
        return len(paths) / (time.perf_counter() - started)
    finally:
        src.close()


def main(size: int, frames: int) -> None:
    video = ROOT.parent.parent / "shared" / "data" / "bedroom.mp4"
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        extract_batches(video, Path(tmp), batch_size=frames)  # batch 0000: the first
        paths = list(frame_paths(Path(tmp) / "0000").values())
        rows = {}
        for threads in sorted({1, 2, cores}):
            runs = [rate(paths, size, threads) for _ in range(3)]
            rows[threads] = {"median": statistics.median(runs), "min": min(runs), "max": max(runs)}
            print(threads, rows[threads], flush=True)
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {cores} cores",
        "torch_threads": torch.get_num_threads(),
        "image_size": size,
        "frames": len(paths),
        "decoder": "sam2",
        "frames_per_second_by_threads": rows,
    }
    out = ROOT / "results" / f"{result['date']}-{cores}cores-frame-source.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*(args + [1024, 100][len(args) :]))
