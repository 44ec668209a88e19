"""The memory summary at scale: ``sam2flow summary`` over N batch records, as a lab's
night on the cluster leaves them (20 videos x 270 batches = 5,400; default 10,000).

    python bench/summary_scale.py [N] [--html PATH]   # bench/results/<date>-summary-scale-N.json
                                                      # (--html: keep the report there)

One real record is made first (``sam2flow segment``, tiny model, random weights, 256 px,
20 synthetic frames); the N records are copies of it, varied: video, batch, frames,
seconds, and every 50th batch recovered (3 attempts) or skipped (a range with its reason).
The summary runs as its own process; wall time and peak RSS are that process's.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent


def real_record(tmp: Path) -> dict:
    video = tmp / "v.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 15, (160, 120))
    for f in range(20):
        img = np.full((120, 160, 3), 40, np.uint8)
        cv2.circle(img, (30 + 5 * f, 60), 15, (230, 230, 230), -1)
        writer.write(img)
    writer.release()
    sam = str(BIN / "sam2flow")
    subprocess.run([sam, "extract", "--video", video, "--out", tmp / "f"], check=True)
    subprocess.run(
        [sam, "segment", "--frames", tmp / "f" / "0000", "--out", tmp / "o", "--point", "30,60"]
        + ["--weights", "random", "--image-size", "256", "--device", "cpu"],
        check=True,
        capture_output=True,
    )
    return json.loads((tmp / "o" / "memory.json").read_text())


def varied(base: dict, n: int, rng: random.Random) -> dict:
    record = copy.deepcopy(base)
    frames, k = 400, len(base["objects"])
    first = (n % 270) * frames
    record.update(
        video=f"video{n // 270:02d}",
        batch=f"{n % 270:04d}",
        first_frame=first,
        last_frame=first + frames - 1,
        frames_total=frames,
        frames_ok=frames,
        seconds=round(rng.uniform(60, 120), 3),
        frame_status={"ok": frames * k},
    )
    record["frames_per_second"] = round(frames / record["seconds"], 3)
    if n % 50 == 7:
        record["status"] = "recovered"
        record["attempts"] = record["attempts"] * 3
    if n % 50 == 13:
        lo = first + 120
        reason = "out of memory at every level down to 25 frames: CUDA out of memory"
        record.update(
            status="skipped",
            frames_ok=frames - 30,
            frames_skipped=30,
            skipped_ranges=[[lo, lo + 29]],
            skip_reasons=[reason],
            skip_reason=reason,
            frame_status={"ok": (frames - 30) * k, "skipped_oom": 30 * k},
        )
    return record


def main() -> int:
    args = sys.argv[1:]
    keep = Path(args.pop(args.index("--html") + 1)) if "--html" in args else None
    args = [a for a in args if a != "--html"]
    count = int(args[0]) if args else 10_000
    rng = random.Random(17)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = real_record(tmp)
        paths = []
        for n in range(count):
            path = tmp / "records" / f"{n:05d}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(varied(base, n, rng)))
            paths.append(str(path))
        (tmp / "list").write_text("\n".join(paths))
        started = time.perf_counter()
        # xargs would split the list; one process reads them all, as the workflow's rule does.
        code = (
            "import sys; from sam2flow.report import write_summary; "
            "paths = open(sys.argv[1]).read().split(); "
            "write_summary(paths, *[sys.argv[2] + n for n in "
            "('/memory_summary.csv', '/memory_report.html', '/skipped.tsv')]); "
            "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        (tmp / "out").mkdir()
        done = subprocess.run(
            [sys.executable, "-c", code, tmp / "list", tmp / "out"],
            check=True,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        peak = int(done.stdout.split()[-1]) * 1024  # the summary process's own peak
        html = (tmp / "out" / "memory_report.html").stat().st_size
        if keep:
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.write_bytes((tmp / "out" / "memory_report.html").read_bytes())
    result = {
        "date": dt.date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "records": count,
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak / 2**20, 1),
        "html_bytes": html,
        "targets": {"seconds": 10, "peak_rss_mib": 500, "html_bytes": 3_000_000},
    }
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{result['date']}-summary-scale-{count}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
