"""Where a frame's time goes in ``segment_batch``, measured, not guessed.

    python bench/time_per_frame.py [IMAGE_SIZE ...]   # default 256 1024; --device cuda

The first 50 frames of ``../shared/data/bedroom.mp4`` (extracted as the workflow does),
SAM 2's reference click, the tiny model with random weights. Timers wrap the library's own
functions for one run:

- *waiting for frames*: the model's thread blocked in ``FrameSource.__getitem__`` (the
  decoding itself, ``FrameSource.load``, runs in its threads and is reported apart);
- *model*: the rest of each step of ``propagate_in_video`` (SAM 2 itself);
- *mask to host*: ``MaskStore.put`` (threshold on the device, copy to the CPU); on a GPU
  this is also where the model's queued work is waited for;
- *packing*: ``MaskStore._store`` (its own thread, overlapping the model);
- *writing*: ``write_batch_outputs``.

Writes ``bench/results/DATE-DEVICE-time-per-frame.json``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import torch

from sam2flow import frames as frames_module
from sam2flow import outputs, segment
from sam2flow.extract import extract_batches
from sam2flow.frame_folders import frame_paths
from sam2flow.memory import GuardConfig, MemoryGuard
from sam2flow.models import ModelOptions, build_model
from sam2flow.prompts import manual_prompt

ROOT = Path(__file__).resolve().parent
SPENT: dict[str, float] = defaultdict(float)
LOCK = threading.Lock()


def timed(owner, name: str, label: str) -> None:
    """Wrap ``owner.name`` so that its time adds to ``SPENT[label]``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            with LOCK:
                SPENT[label] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def timed_steps(predictor) -> None:
    """Time each step of ``propagate_in_video``: the generator's own work."""
    original = predictor.propagate_in_video

    def propagate(*args, **kwargs):
        steps = original(*args, **kwargs)
        while True:
            started = time.perf_counter()
            try:
                item = next(steps)
            except StopIteration:
                return
            finally:
                SPENT["propagate step (model + waiting for frames)"] += (
                    time.perf_counter() - started
                )
            yield item

    predictor.propagate_in_video = propagate


def run(size: int, device: str, folder: Path) -> dict:
    SPENT.clear()
    model = build_model(ModelOptions(weights="random", image_size=size, device=device))
    timed_steps(model.predictor)
    paths = frame_paths(folder)
    job_frames = list(paths)
    guard = MemoryGuard(GuardConfig(monitoring=False, adaptive_batch_size=False), model.device)
    with tempfile.TemporaryDirectory() as out:
        job = segment.BatchJob(folder, Path(out), manual_prompt(job_frames[0], "210,350"))
        started = time.perf_counter()
        segment.segment_batch(job, model, guard)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        total = time.perf_counter() - started
    n = len(job_frames)
    step = SPENT.pop("propagate step (model + waiting for frames)")
    waiting = SPENT["waiting for frames"]
    per_frame = {
        "model": (step - waiting) / n,
        "waiting for frames (model's thread)": waiting / n,
        "mask to host (MaskStore.put)": SPENT["mask to host"] / n,
        "writing (write_batch_outputs)": SPENT["writing"] / n,
        "other (state set-up, prompt, guard)": (
            total - step - SPENT["mask to host"] - SPENT["writing"]
        )
        / n,
    }
    beside = {
        "decoding (FrameSource.load, its threads)": SPENT["decoding"] / n,
        "packing (MaskStore._store, its thread)": SPENT["packing"] / n,
    }
    return {
        "image_size": size,
        "frames": n,
        "seconds": total,
        "frames_per_second": n / total,
        "ms_per_frame_on_the_models_thread": {k: round(v * 1000, 2) for k, v in per_frame.items()},
        "ms_per_frame_in_other_threads": {k: round(v * 1000, 2) for k, v in beside.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("sizes", nargs="*", type=int, default=[256, 1024])
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    timed(frames_module.FrameSource, "__getitem__", "waiting for frames")
    timed(frames_module.FrameSource, "load", "decoding")
    timed(outputs.MaskStore, "put", "mask to host")
    timed(outputs.MaskStore, "_store", "packing")
    timed(segment, "write_batch_outputs", "writing")
    video = ROOT.parent.parent / "shared" / "data" / "bedroom.mp4"
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        extract_batches(video, Path(tmp), batch_size=50)
        for size in args.sizes:
            runs.append(run(size, args.device, Path(tmp) / "0000"))
            print(json.dumps(runs[-1], indent=1), flush=True)
    device = (
        torch.cuda.get_device_name(0).replace(" ", "-").lower()
        if args.device == "cuda"
        else f"cpu-{len(os.sched_getaffinity(0))}cores"
    )
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "device": device,
        "torch": torch.__version__,
        "runs": runs,
    }
    path = ROOT / "results" / f"{result['date']}-{device}-time-per-frame.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    main()
