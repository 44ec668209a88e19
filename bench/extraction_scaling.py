"""How extraction's wall time divides with ranges (``--workers N``) on the cores a node has.

    python bench/extraction_scaling.py [N ...]   # default 1 2 4 8, capped at the cores
    # -> bench/results/<date>-<machine>-extraction-scaling.json

Needs no ffmpeg binary (a lent GPU machine has none): the 1920x1080 H.264 video is made
with PyAV's libx264 (x264's defaults, a keyframe every 250 frames, 1,800 frames), plus
m3v1mp4.mp4 where ../shared/data has it. Each run is a whole ``sam2flow extract`` process,
as a user would run it; every N's JPEGs must equal one process's byte for byte.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from extraction import timed  # noqa: E402 (bench/ is this script's folder)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"


def make_video(path: Path, width: int = 1920, height: int = 1080, frames: int = 1800) -> Path:
    """A moving gradient under noise, so that every frame differs as in a recording; x264's
    veryfast preset (its default keyframe interval, 250, and B-frames)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    noise = rng.integers(0, 3, (height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            img = np.roll(base, 4 * i, axis=1) + np.roll(noise, 7 * i, axis=0)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    return path


def digest(folder: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    for f in sorted(folder.rglob("*.jpg")):
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def extract(video: Path, out: Path, workers: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "sam2flow.cli", "extract", "--video", str(video)]
    cmd += ["--out", str(out), "--batch-size", "400", "--workers", str(workers)]
    return timed(cmd)


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    counts = [int(a) for a in sys.argv[1:]] or [1, 2, 4, 8]
    counts = [n for n in counts if n <= cores]
    result = {
        "date": dt.date.today().isoformat(),
        "command": "python bench/extraction_scaling.py " + " ".join(map(str, counts)),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": cores},
        "videos": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        videos = [make_video(work / "gradient-1920x1080.mp4")]
        print(f"made the 1080p video in {time.perf_counter() - start:.1f} s", flush=True)
        videos += [DATA / "m3v1mp4.mp4"] if (DATA / "m3v1mp4.mp4").exists() else []
        for video in videos:
            rows, one = {}, None
            for n in counts:
                out = work / f"x-{n}"
                seconds = extract(video, out, n)
                frames = json.loads((out / "frames.json").read_text())["frames"]
                same = digest(out)
                one = one or same
                rows[str(n)] = {"seconds": seconds, "fps": frames / seconds, "same": same == one}
                print(
                    f"  {video.name} --workers {n}: {frames / seconds:.1f} frames/s, "
                    f"{rows['1']['seconds'] / seconds if '1' in rows else 1:.2f}x one process, "
                    f"identical: {same == one}",
                    flush=True,
                )
            result["videos"][video.name] = {"frames": frames, "workers": rows}
    tag = os.environ.get("BENCH_MACHINE_TAG") or f"cpu{cores}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{result['date']}-{tag}-extraction-scaling.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
