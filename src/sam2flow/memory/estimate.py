"""Estimation: how many bytes a SAM 2-style video job needs, from a small cost model.

The model adds up what is held at the peak of one frame's work:
- weights (parameters x 4 bytes);
- activations of one forward pass, proportional to image_size² (and to objects);
- video frames, 3 x S x S x 4 bytes each, unless offloaded to the CPU; a bounded job
  (sam2flow's) holds only a read-ahead window of frames instead of every frame;
- per-object state per frame (memory features in bf16, low-res masks, object pointer);
  a bounded job keeps only the frames the model will read again;
- on the CPU, the runtime itself (torch and its libraries) and the packed output masks.
The two size-dependent coefficients (activations, runtime) are calibrated by measuring
peaks at two batch lengths (see ``bench/``) and kept in ``CALIBRATION``.
"""

from __future__ import annotations

import math

MIB = 1024**2

#: Parameters of the SAM 2 image encoders + heads, by size name.
MODEL_PARAMS = {"tiny": 38.9e6, "small": 46.0e6, "base_plus": 80.8e6, "large": 224.4e6}

#: Calibrated on this project's reference machine (see BENCHMARKS.md): activation bytes per
#: object per forward at image size 1024, per device kind, and the CPU runtime's resident size.
#: The runtime's resident size depends on the page cache: torch's CUDA-built libraries are
#: file-backed, and more of their pages are mapped when they are hot (right after an install,
#: as in CI). The same 60-frame CLI run peaked at 911 MB with a cold cache and at 1,128-1,323
#: MB with a hot one (2026-11-27); 800 MiB puts the estimate within 20 % of both.
#: CUDA: bf16 autocast (the default there), from torch's peak allocated on an NVIDIA H200,
#: 2026-11-27: 653 MB for 200 frames of bedroom.mp4 (540 x 960) with the tiny model at
#: 1024, of which 383 MB are activations (the first guess, 1,100 MiB, was 2.2x too high).
CALIBRATION = {
    "activation_bytes_1024": {"cuda": 370 * MIB, "cpu": 1_170 * MIB},
    "cpu_runtime_bytes": 800 * MIB,
}

#: Frames decoded ahead of the model, and state frames kept, by a bounded job.
READ_AHEAD = 8
STATE_WINDOW = 16


def size_name(model: str) -> str:
    """``sam2.1_hiera_tiny`` -> ``tiny`` (unknown names count as ``large``, the safe side)."""
    for name in MODEL_PARAMS:
        if model.endswith(name) or model == name:
            return name
    return "large"


def frame_bytes(image_size: int) -> int:
    """One normalised frame as the model sees it: 3 x S x S float32."""
    return 3 * image_size * image_size * 4


def state_bytes_per_frame(image_size: int) -> int:
    """Per object and frame: memory features (64 x S/16², bf16), masks (S/4², fp32), pointer."""
    feat = 64 * (image_size // 16) ** 2 * 2
    masks = (image_size // 4) ** 2 * 4
    return feat + masks + 256 * 4


def estimate(
    frames: int,
    height: int,
    width: int,
    objects: int = 1,
    model: str = "sam2.1_hiera_tiny",
    image_size: int = 1024,
    offload: bool = False,
    *,
    device: str = "cuda",
    bounded: bool = True,
) -> int:
    """Peak bytes of segmenting ``frames`` frames of ``height`` x ``width`` video.

    ``bounded=False`` models stock SAM 2 (every frame and every frame's state kept).

    >>> estimate(400, 480, 640, image_size=1024, bounded=False) > estimate(400, 480, 640)
    True
    """
    if frames < 1 or height < 1 or width < 1 or objects < 1 or image_size < 16:
        raise ValueError("frames, height, width, objects must be >= 1 and image_size >= 16")
    kind = "cpu" if device == "cpu" else "cuda"
    weights = MODEL_PARAMS[size_name(model)] * 4
    act = CALIBRATION["activation_bytes_1024"][kind] * (image_size / 1024) ** 2
    act *= 1 + 0.25 * (objects - 1)  # objects share the image encoder's features
    held_frames = min(frames, READ_AHEAD) if bounded else frames
    held_state = min(frames, STATE_WINDOW + 1) if bounded else frames
    video = 0 if (offload and kind != "cpu") else held_frames * frame_bytes(image_size)
    state = held_state * objects * state_bytes_per_frame(image_size)
    if offload and kind != "cpu":
        state = STATE_WINDOW * objects * state_bytes_per_frame(image_size) // 4
    total = weights + act + video + state
    if kind == "cpu":
        masks_out = frames * objects * math.ceil(height * width / 8)
        total += CALIBRATION["cpu_runtime_bytes"] + masks_out
    return int(total)


def largest_batch_that_fits(budget_bytes: int, height: int, width: int, **kwargs) -> int:
    """The most frames whose estimate fits ``budget_bytes`` (0 when even one frame does not).

    Searches up to 10 million frames; a bounded job that fits once usually fits them all.
    """
    lo, hi = 0, 10_000_000
    if estimate(1, height, width, **kwargs) > budget_bytes:
        return 0
    if estimate(hi, height, width, **kwargs) <= budget_bytes:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate(mid, height, width, **kwargs) <= budget_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo


def estimate_host(
    frames: int,
    height: int,
    width: int,
    objects: int = 1,
    model: str = "sam2.1_hiera_tiny",
    image_size: int = 1024,
    *,
    device: str = "cuda",
) -> int:
    """Peak bytes of host memory (RSS) of a bounded job: all of it on the CPU; on a GPU the
    runtime, a CPU copy of the weights while loading, and the packed output masks."""
    if device == "cpu":
        return estimate(frames, height, width, objects, model, image_size, device="cpu")
    weights = MODEL_PARAMS[size_name(model)] * 4
    masks_out = frames * objects * math.ceil(height * width / 8)
    return int(CALIBRATION["cpu_runtime_bytes"] + weights + masks_out)


def check_host_memory(need_bytes: int, mem_mb: int | None, what: str = "job") -> None:
    """Fail fast when a job was given less host memory than it needs (``MemoryError``).

    On a cluster the scheduler would kill it half-way instead; failing at once lets the
    workflow retry with the next attempt's larger ``mem_mb``.
    """
    if mem_mb is None or mem_mb <= 0:
        return
    if need_bytes > mem_mb * MIB:
        raise MemoryError(
            f"{what} needs about {need_bytes / MIB:.0f} MiB of host memory but was given "
            f"mem_mb={mem_mb}; a retry asks for more (resources grow with the attempt)"
        )
