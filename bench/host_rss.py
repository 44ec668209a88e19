"""Host memory of a batch's masks against its length, from a stand-in that is never slow.

    python bench/host_rss.py [FRAMES ...]   # default 50 400; writes bench/results/

Each length runs in a fresh process (``--one N BACKLOG``): a ``MaskStore`` for 1080p x 5
objects gets SAM 2-shaped logits (objects x 1 x H x W, float32, already computed, so frames
arrive as fast as ``put`` returns) and the process's peak resident memory (``VmHWM``) is
read after the last frame is packed. It runs with the bounded backlog
(``outputs.MAX_BACKLOG``) and with an unbounded one (what the code did before), and
reports what the packed masks themselves would take (one bit per pixel) beside the
peak: since they are spilled to a file as frames finish, they are no longer held.
"""

from __future__ import annotations

import datetime
import json
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

HEIGHT, WIDTH, OBJECTS = 1080, 1920, 5


def peak_rss() -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text)[1]) * 1024


def one(frames: int, backlog: int) -> dict:
    import tempfile

    import torch

    from sam2flow import outputs

    outputs.MAX_BACKLOG = backlog
    logits = torch.randn(OBJECTS, 1, HEIGHT, WIDTH)
    spill = tempfile.mkdtemp()
    store = outputs.MaskStore(
        list(range(frames)), list(range(1, OBJECTS + 1)), HEIGHT, WIDTH, spill_dir=spill
    )
    base = peak_rss()
    for f in range(frames):
        store.put(f, logits)
    store.flush()
    with tempfile.TemporaryDirectory() as out:  # and written, as a batch's outputs are
        with open(Path(out) / "masks.npy", "wb") as fp:
            store.write_masks(fp)
    return {
        "frames": frames,
        "backlog": backlog,
        "peak_rss_bytes": peak_rss(),
        "before_frames_bytes": base,
        "packed_masks_bytes": int(np.prod(store.shape)),
    }


def main(lengths: list[int]) -> None:
    runs = []
    for backlog in (4, 10**9):
        for n in lengths:
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(n), str(backlog)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout))
            print(runs[-1], flush=True)
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "shape": f"{OBJECTS} objects x {HEIGHT}x{WIDTH}",
        "runs": runs,
    }
    for backlog in (4, 10**9):
        by = {r["frames"]: r for r in runs if r["backlog"] == backlog}
        lo, hi = by[min(lengths)], by[max(lengths)]
        key = "bounded" if backlog == 4 else "unbounded"
        result[f"{key}_ratio"] = round(hi["peak_rss_bytes"] / lo["peak_rss_bytes"], 3)
    path = Path(__file__).parent / "results" / f"{result['date']}-host-rss.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(one(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        main([int(a) for a in sys.argv[1:]] or [50, 400])
