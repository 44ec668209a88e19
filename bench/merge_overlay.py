"""Merge and overlay throughput at 1080p: what ``resources.merge_video`` is sized from.

    python bench/merge_overlay.py [FRAMES]   # default 800
    # -> bench/results/<date>-merge-overlay-FRAMES.json

Two synthetic batches (two moving discs as objects, packed as segment_batch writes them)
over an ffmpeg ``testsrc2`` 1920x1080 video: ``outputs.merge_video`` then
``outputs.render_overlay`` (H.264), each timed in this process.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sam2flow.outputs import merge_video, render_overlay

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
H, W = 1080, 1920


def batch(folder: Path, frames: list[int]) -> Path:
    """A batch output as segment_batch writes it: packed masks of objects 1 and 2."""
    yy, xx = np.ogrid[0:H, 0:W]
    packed = np.zeros((len(frames), 2, (H * W + 7) // 8), np.uint8)
    for i, f in enumerate(frames):
        for k in range(2):
            disc = (xx - (300 + f % 1000 + 600 * k)) ** 2 + (yy - 540) ** 2 < 150**2
            packed[i, k] = np.packbits(disc.ravel())
    folder.mkdir(parents=True)
    np.savez_compressed(
        folder / "masks.npz",
        frames=np.asarray(frames),
        object_ids=np.asarray([1, 2]),
        masks=packed,
        shape=np.asarray([len(frames), 2, H, W]),
        status=np.full((len(frames), 2), "ok").astype(str),
    )
    table = {"frame": np.repeat(frames, 2), "object": [1, 2] * len(frames), "status": "ok"}
    pd.DataFrame(table).to_csv(folder / "frames.csv", index=False)
    return folder


def main() -> None:
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 800
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = tmp / "v.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=30"]
            + ["-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", str(video)],
            check=True,
        )
        half = frames // 2
        dirs = [batch(tmp / "b0", list(range(half))), batch(tmp / "b1", list(range(half, frames)))]
        start = time.perf_counter()
        merge_video(dirs, tmp / "merged")
        merge_s = time.perf_counter() - start
        start = time.perf_counter()
        render_overlay(video, tmp / "merged/masks.h5", tmp / "o.mp4", tmp / "s.png")
        overlay_s = time.perf_counter() - start
    result = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "frames": frames,
        "size": f"{W}x{H}",
        "objects": 2,
        "merge_seconds": round(merge_s, 2),
        "overlay_seconds": round(overlay_s, 2),
        "frames_per_second": round(frames / (merge_s + overlay_s), 1),
        "minutes_per_10k_frames": round((merge_s + overlay_s) / frames * 10_000 / 60, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{result['date']}-merge-overlay-{frames}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result), out, sep="\n")


if __name__ == "__main__":
    main()
