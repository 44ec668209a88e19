"""Frame decoding cost: SAM 2's own loader (the default, masks identical to stock SAM 2)
against OpenCV (faster, slightly different pixels), per frame, single thread.

    python bench/decoders.py      # writes bench/results/<date>-decoders-cpu.json

Frames: the first 100 of bedroom.mp4 (960x540) and m3v1mp4.mp4 (640x480), extracted by
sam2flow; model input sizes 256 and 1024. Median of 3 passes over the frames.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"


def main() -> int:
    from sam2flow.extract import extract_batches
    from sam2flow.frame_folders import frame_paths
    from sam2flow.frame_source import opencv_frame, sam2_frame

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("bedroom.mp4", "m3v1mp4.mp4"):
            if not (DATA / name).is_file():
                print(f"skipping {name}: {DATA} is absent", file=sys.stderr)
                continue
            extract_batches(DATA / name, Path(tmp) / name, batch_size=100)
            paths = list(frame_paths(Path(tmp) / name / "0000").values())
            for size in (256, 1024):
                row = {"video": name, "image_size": size, "frames": len(paths)}
                for decoder, fn in (("sam2", sam2_frame), ("opencv", opencv_frame)):
                    runs = []
                    for _ in range(3):
                        started = time.perf_counter()
                        for p in paths:
                            fn(p, size)
                        runs.append((time.perf_counter() - started) / len(paths) * 1000)
                    row[f"{decoder}_ms_per_frame"] = round(statistics.median(runs), 3)
                rows.append(row)
                print(json.dumps(row))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{dt.date.today()}-decoders-cpu.json"
    meta = {"machine": platform.machine(), "torch": torch.__version__, "threads": 1}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
