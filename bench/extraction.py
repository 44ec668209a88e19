"""Frame extraction against ffmpeg, whole processes side by side, as a user would run them.

    python bench/extraction.py [RUNS]   # default 3
    # -> bench/results/<date>-extraction.json (the table in BENCHMARKS.md reads it)

``sam2flow extract --workers N`` (N: this machine's cores, at most 4: ranges of the
video decoded in parallel, ``sam2flow.ranges``) and ``--workers 1`` (one process) against
``ffmpeg -i VIDEO -q:v 2 %05d.jpg``, on the shared videos and on a 1280x720 and a
1920x1080 H.264 video made here with ffmpeg (``testsrc2``, 30 fps, x264's defaults: a
keyframe every 250 frames). Runs alternate, so drift hits all alike; all pay their
start-up. Quality: PSNR of 10 frames against the decoded video, JPEG size.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
SAM2FLOW = str(Path(sys.executable).with_name("sam2flow"))
MADE = {"testsrc-1280x720.mp4": (1280, 720, 300), "testsrc-1920x1080.mp4": (1920, 1080, 900)}


def stats(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def jpeg_quality(folder: Path, video: Path, sample: int = 10) -> dict:
    files = sorted(folder.rglob("*.jpg"), key=lambda p: p.name)
    picks = set(np.linspace(0, len(files) - 1, sample).astype(int).tolist())
    cap = cv2.VideoCapture(str(video))
    values, i = [], 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if i in picks:
            values.append(psnr(img, cv2.imread(str(files[i]))))
        i += 1
    return {
        "psnr_db": float(np.mean(values)),
        "bytes_per_frame": int(sum(f.stat().st_size for f in files) / len(files)),
    }


def make_video(path: Path, width: int, height: int, frames: int) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30"]
        + ["-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return path


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_extraction(runs: int, work: Path) -> dict:
    """Rows per video: frames/s of both (whole processes), ratio, JPEG quality."""
    workers = min(4, len(os.sched_getaffinity(0)))
    videos = [DATA / n for n in ("bedroom.mp4", "m3v1mp4.mp4") if (DATA / n).exists()]
    videos += [make_video(work / n, *size) for n, size in MADE.items()]
    rows = {}
    for video in videos:
        ours, theirs = work / f"x-{video.name}", work / f"ff-{video.name}"
        ours_t, one_t, ff_t = [], [], []
        for _ in range(runs):
            for n, times in ((1, one_t), (workers, ours_t)):  # the default last: its JPEGs
                shutil.rmtree(ours, ignore_errors=True)
                times.append(
                    timed(
                        [SAM2FLOW, "extract", "--video", str(video), "--out", str(ours)]
                        + ["--batch-size", "400", "--workers", str(n)]
                    )
                )
            shutil.rmtree(theirs, ignore_errors=True)
            theirs.mkdir()
            ff_t.append(
                timed(
                    ["ffmpeg", "-v", "error", "-i", str(video), "-q:v", "2"]
                    + ["-start_number", "0", str(theirs / "%05d.jpg")]
                )
            )
        frames = json.loads((ours / "frames.json").read_text())["frames"]
        assert frames == len(list(theirs.glob("*.jpg"))), "sam2flow and ffmpeg frame counts"
        mine = {"fps": stats([frames / t for t in ours_t]), "quality_setting": "95 (OpenCV)"}
        mine.update(jpeg_quality(ours, video), workers=workers)
        one = {"fps": stats([frames / t for t in one_t]), "workers": 1}
        ff = {"fps": stats([frames / t for t in ff_t]), "quality_setting": "-q:v 2"}
        ff.update(jpeg_quality(theirs, video))
        rows[video.name] = {
            "frames": frames,
            "sam2flow": mine,
            "ffmpeg": ff,
            "ratio_fps": mine["fps"]["median"] / ff["fps"]["median"],
            "one_process": one,
            "ratio_fps_one_process": one["fps"]["median"] / ff["fps"]["median"],
        }
        print(f"  extract {video.name}: {rows[video.name]['ratio_fps']:.2f}x ffmpeg", flush=True)
    return rows


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench_extraction(runs, Path(tmp))
    result = {
        "date": dt.date.today().isoformat(),
        "command": f"python bench/extraction.py {runs}",
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "ffmpeg": subprocess.run(
            ["ffmpeg", "-version"], capture_output=True, text=True
        ).stdout.split("\n")[0],
        "extraction": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{result['date']}-extraction.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
