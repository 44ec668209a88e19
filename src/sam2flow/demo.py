"""Demo: a short synthetic video with moving animals and DeepLabCut-style predictions for it.

Lets ``make run`` show the whole workflow without downloading anything. Two ellipse
"animals" walk over a textured floor; the prediction CSV (multi-animal format, 4 header
rows) gives snout, centre and tail base per animal with a likelihood, some below cutoff.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from .atomic import atomic_path

BODYPARTS = ("snout", "centre", "tailbase")


def _animal_pose(t: float, k: int, width: int, height: int) -> tuple[float, float, float]:
    """Centre and heading of animal ``k`` at time ``t`` (a smooth loop around the arena)."""
    cx = width * (0.5 + (0.3 - 0.1 * k) * math.cos(0.9 * t + 2.5 * k))
    cy = height * (0.5 + (0.28 - 0.08 * k) * math.sin(1.3 * t + 2.5 * k))
    dx = -(0.3 - 0.1 * k) * width * 0.9 * math.sin(0.9 * t + 2.5 * k)
    dy = (0.28 - 0.08 * k) * height * 1.3 * math.cos(1.3 * t + 2.5 * k)
    return cx, cy, math.atan2(dy, dx)


def write_demo(
    out_dir: str | Path, frames: int = 120, width: int = 320, height: int = 240, fps: int = 15
) -> dict:
    """Write ``demo.mp4`` and ``demo_predictions.csv`` under ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    floor = rng.integers(90, 140, size=(height // 8, width // 8, 3), dtype=np.uint8)
    floor = cv2.resize(floor, (width, height), interpolation=cv2.INTER_NEAREST)
    floor = cv2.GaussianBlur(floor, (5, 5), 0)
    colours = [(40, 40, 40), (230, 230, 230)]
    rows = []
    video = out / "demo.mp4"
    with atomic_path(video) as tmp:
        writer = cv2.VideoWriter(
            str(tmp) + ".mp4", cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height)
        )
        for f in range(frames):
            img = floor.copy()
            row = []
            for k in range(2):
                cx, cy, heading = _animal_pose(f / fps, k, width, height)
                axes = (int(width * 0.07), int(width * 0.035))
                cv2.ellipse(
                    img, (int(cx), int(cy)), axes, math.degrees(heading), 0, 360, colours[k], -1
                )
                ux, uy = math.cos(heading), math.sin(heading)
                pts = [
                    (cx + ux * axes[0], cy + uy * axes[0]),
                    (cx, cy),
                    (cx - ux * axes[0], cy - uy * axes[0]),
                ]
                for j, (px, py) in enumerate(pts):
                    likelihood = 0.95 if (f + j + k) % 17 else 0.3  # a few points below cutoff
                    row += [px + rng.normal(0, 0.5), py + rng.normal(0, 0.5), likelihood]
            writer.write(img)
            rows.append(row)
        writer.release()
        Path(str(tmp) + ".mp4").replace(tmp)
    columns = pd.MultiIndex.from_tuples(
        [
            ("sam2flow-demo", f"animal{k + 1}", bp, c)
            for k in range(2)
            for bp in BODYPARTS
            for c in ("x", "y", "likelihood")
        ],
        names=["scorer", "individuals", "bodyparts", "coords"],
    )
    table = pd.DataFrame(np.asarray(rows), columns=columns)
    predictions = out / "demo_predictions.csv"
    with atomic_path(predictions) as tmp:
        table.to_csv(tmp)
    return {"video": video, "predictions": predictions}
