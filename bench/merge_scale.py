"""Merge and overlay of a 1-minute and a 60-minute 1080p video: memory that does not grow
with the video, and one frame's masks read from the hour without the rest.

    python bench/merge_scale.py [MINUTES ...]   # default: 1 60
    # -> bench/results/<date>-merge-scale.json

For each length (30 fps, 1920x1080, two objects): a video made with ffmpeg (a grey frame
with a moving box, H.264 ultrafast: cheap to make, what matters is its size), and batch
outputs of 400 frames as ``segment_batch`` writes them (two moving discs, packed masks).
Then, each in a fresh process: ``outputs.merge_video`` followed by
``outputs.render_overlay`` (peak RSS of that process, and the time of each), and
``outputs.read_masks`` of one frame at 75 % of the video (time and peak RSS).

Targets (issue 13): peak RSS(60 min) / peak RSS(1 min) <= 1.2 and less than 100 MB more;
one frame read from the 60-minute file in < 50 ms and < 200 MB.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
H, W, FPS, BATCH = 1080, 1920, 30, 400
PERIOD = 120  # disc positions repeat every PERIOD frames: masks made once, then reused

# Peak RSS from /proc/self/status (VmHWM): getrusage's ru_maxrss would count this parent's
# memory too, as Linux carries a forked process's high-water mark across exec.
HWM = """
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
"""

MERGE = (
    HWM
    + """
import json, sys, time
from pathlib import Path
from sam2flow.outputs import merge_video
from sam2flow.overlay import render_overlay
work = Path(sys.argv[1])
batches = sorted((work / "batches").iterdir())
t0 = time.perf_counter()
merge_video(batches, work / "merged")
t1 = time.perf_counter()
render_overlay(work / "video.mp4", work / "merged/masks.h5", work / "o.mp4", work / "s.png")
t2 = time.perf_counter()
print(json.dumps({"merge_seconds": t1 - t0, "overlay_seconds": t2 - t1,
                  "peak_rss_bytes": hwm()}))
"""
)

READ = (
    HWM
    + """
import json, sys, time
from sam2flow.outputs import read_masks
before = hwm()
t0 = time.perf_counter()
frames, objects, masks = read_masks(sys.argv[1], frames=[int(sys.argv[2])])
seconds = time.perf_counter() - t0
assert frames.tolist() == [int(sys.argv[2])] and masks.shape[:2] == (1, 2)
print(json.dumps({"seconds": seconds, "peak_rss_bytes": hwm(), "peak_rss_before_bytes": before,
                  "pixels": int(masks.sum())}))
"""
)


def patterns() -> np.ndarray:
    """Packed masks of objects 1 and 2 for each of PERIOD positions (discs moving apart)."""
    yy, xx = np.ogrid[0:H, 0:W]
    out = np.zeros((PERIOD, 2, (H * W + 7) // 8), np.uint8)
    for i in range(PERIOD):
        for k in range(2):
            disc = (xx - (400 + 8 * i + 700 * k)) ** 2 + (yy - 540) ** 2 < 150**2
            out[i, k] = np.packbits(disc.ravel())
    return out


def write_batches(folder: Path, frames: int, packed: np.ndarray) -> None:
    """Batch outputs as ``segment_batch`` writes them (masks.npz, frames.csv)."""
    for b, first in enumerate(range(0, frames, BATCH)):
        index = np.arange(first, min(first + BATCH, frames))
        out = folder / f"{b:04d}"
        out.mkdir(parents=True)
        np.savez_compressed(
            out / "masks.npz",
            frames=index,
            object_ids=np.asarray([1, 2]),
            masks=packed[index % PERIOD],
            shape=np.asarray([len(index), 2, H, W]),
            status=np.full((len(index), 2), "ok").astype(str),
        )
        table = {"frame": np.repeat(index, 2), "object": [1, 2] * len(index), "status": "ok"}
        pd.DataFrame(table).to_csv(out / "frames.csv", index=False)


def make_video(path: Path, frames: int) -> None:
    box = "drawbox=x='mod(t*240,1600)':y=200:w=200:h=200:color=white:t=fill"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"color=c=gray:size={W}x{H}:rate={FPS}"]
        + ["-vf", box, "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast"]
        + ["-pix_fmt", "yuv420p", str(path)],
        check=True,
    )


def child(code: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(minutes: float, packed: np.ndarray, work: Path) -> dict:
    frames = round(minutes * 60 * FPS)
    t0 = time.perf_counter()
    make_video(work / "video.mp4", frames)
    write_batches(work / "batches", frames, packed)
    setup = time.perf_counter() - t0
    row = {"frames": frames, "batches": len(list((work / "batches").iterdir()))}
    row.update(child(MERGE, str(work)))
    row["frames_per_second"] = frames / (row["merge_seconds"] + row["overlay_seconds"])
    row["masks_h5_bytes"] = (work / "merged/masks.h5").stat().st_size
    row["overlay_bytes"] = (work / "o.mp4").stat().st_size
    row["read_one_frame"] = child(READ, str(work / "merged/masks.h5"), str(frames * 3 // 4))
    row["setup_seconds"] = setup
    print(json.dumps({minutes: row}), flush=True)
    return row


def main() -> None:
    minutes = [float(m) for m in sys.argv[1:]] or [1.0, 60.0]
    packed = patterns()
    rows = {}
    for m in minutes:
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
            rows[f"{m:g}"] = measure(m, packed, Path(tmp))
    result = {
        "date": dt.date.today().isoformat(),
        "command": "python bench/merge_scale.py " + " ".join(f"{m:g}" for m in minutes),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "size": f"{W}x{H}",
        "fps": FPS,
        "objects": 2,
        "rows": rows,
    }
    if len(rows) > 1:
        lo, hi = rows[min(rows, key=float)], rows[max(rows, key=float)]
        result["peak_rss_ratio"] = hi["peak_rss_bytes"] / lo["peak_rss_bytes"]
        result["peak_rss_growth_bytes"] = hi["peak_rss_bytes"] - lo["peak_rss_bytes"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{result['date']}-merge-scale.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}), out, sep="\n")


if __name__ == "__main__":
    main()
