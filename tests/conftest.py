"""Shared fixtures: real data (skipped where absent), small synthetic videos, the real model."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_file(name: str) -> Path:
    """A file of ../shared/data, or skip: a user's fresh clone does not have it."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (real test data lives in ../shared/data beside the clone)")
    return path


def write_video(path: Path, frames: int = 60, width: int = 160, height: int = 120) -> Path:
    """A synthetic video: a bright disc moving across a dark textured floor."""
    rng = np.random.default_rng(1)
    floor = rng.integers(20, 60, size=(height, width, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, (width, height))
    for f in range(frames):
        img = floor.copy()
        cx = int(width * (0.2 + 0.6 * f / max(frames - 1, 1)))
        cv2.circle(img, (cx, height // 2), max(6, height // 8), (230, 230, 230), -1)
        writer.write(img)
    writer.release()
    return path


@pytest.fixture(autouse=True)
def _no_injected_oom(monkeypatch):
    """Tests set SAM2FLOW_INJECT_OOM themselves; none inherits it."""
    monkeypatch.delenv("SAM2FLOW_INJECT_OOM", raising=False)
    os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def synthetic_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "disc.mp4")


@pytest.fixture(scope="session")
def synthetic_frames(tmp_path_factory, synthetic_video) -> Path:
    """The synthetic video extracted into one 60-frame batch; returns the batch folder."""
    from sam2flow.frames import extract_batches

    out = tmp_path_factory.mktemp("frames")
    extract_batches(synthetic_video, out, batch_size=60)
    return out / "0000"


@pytest.fixture(scope="session")
def tiny_model():
    """The real SAM 2.1 tiny model with random weights at image size 256 on the CPU."""
    from sam2flow.models import build_model

    return build_model("sam2.1_hiera_tiny", "random", image_size=256, device="cpu")
