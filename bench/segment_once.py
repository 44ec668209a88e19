"""Segment one JPEG folder once, in this process, and print a JSON line of measurements.

    python bench/segment_once.py sam2flow|stock FRAMES_DIR --point X,Y [--image-size S]

Run in a fresh process per measurement so that peak memory (ru_maxrss on the CPU,
torch.cuda.max_memory_allocated on a GPU) belongs to this run alone. ``stock`` is what a
user would do without sam2flow: ``init_state`` on the folder, one click,
``propagate_in_video``, masks moved to the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["sam2flow", "stock"])
    p.add_argument("frames")
    p.add_argument("--point", default="210,350")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--monitoring", choices=["on", "off"], default="on")
    p.add_argument("--max-gpu-memory-gb", type=float, default=None)
    p.add_argument("--decoder", choices=["sam2", "opencv"], default="sam2")
    args = p.parse_args()

    import torch

    from sam2flow.frame_folders import list_frames
    from sam2flow.memory import GuardConfig, MemoryGuard
    from sam2flow.models import ModelOptions, build_model
    from sam2flow.prompts import manual_prompt
    from sam2flow.segment import BatchJob, segment_batch

    model = build_model(
        ModelOptions(weights="random", image_size=args.image_size, device=args.device)
    )
    frames = list_frames(args.frames)
    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    status = "ok"
    if args.mode == "sam2flow":
        guard = MemoryGuard(
            GuardConfig(
                monitoring=args.monitoring == "on",
                adaptive_batch_size=False,
                max_gpu_memory_gb=args.max_gpu_memory_gb,
            ),
            model.device,
        )
        with tempfile.TemporaryDirectory() as out:
            job = BatchJob(
                __import__("pathlib").Path(args.frames),
                __import__("pathlib").Path(out),
                manual_prompt(frames[0], args.point),
                decoder=args.decoder,
            )
            record = segment_batch(job, model, guard)
        status = record["status"]
    else:
        predictor = model.predictor
        x, y = (float(v) for v in args.point.split(","))
        try:
            with torch.inference_mode(), model.autocast():
                state = predictor.init_state(args.frames)
                predictor.add_new_points_or_box(state, 0, 1, points=[[x, y]], labels=[1])
                masks = {}
                for idx, _, logits in predictor.propagate_in_video(state):
                    masks[idx] = (logits > 0).cpu().numpy()
        except torch.OutOfMemoryError:
            status = "oom"
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "mode": args.mode,
                "frames": len(frames),
                "status": status,
                "seconds": seconds,
                "fps": len(frames) / seconds,
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "rss_before_bytes": base_rss,
                "peak_cuda_allocated_bytes": torch.cuda.max_memory_allocated() if cuda else None,
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
