"""Limits: the memory cap, the cleanup threshold and the allocator settings."""

from __future__ import annotations

import logging
import os

import torch

from . import devices
from .monitoring import Snapshot

log = logging.getLogger(__name__)

GIB = 1024**3


def validate_threshold(threshold: float) -> float:
    """Check ``0 < threshold <= 1``; anything else is a ``ValueError`` naming the value.

    >>> validate_threshold(0.85)
    0.85
    """
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(
            f"memory_threshold must be a number in (0, 1], got {threshold!r}"
        ) from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"memory_threshold must be in (0, 1], got {threshold!r}")
    return value


def validate_max_gpu_memory(max_gpu_memory_gb: float | None) -> float | None:
    """Check that a cap, when given, is a positive number of GiB."""
    if max_gpu_memory_gb is None:
        return None
    value = float(max_gpu_memory_gb)
    if value <= 0:
        raise ValueError(f"max_gpu_memory_gb must be > 0, got {max_gpu_memory_gb!r}")
    return value


def allocator_env_var() -> str:
    """``PYTORCH_ALLOC_CONF`` on torch >= 2.11, ``PYTORCH_CUDA_ALLOC_CONF`` before."""
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    return "PYTORCH_ALLOC_CONF" if (major, minor) >= (2, 11) else "PYTORCH_CUDA_ALLOC_CONF"


def enable_expandable_segments(environ: dict | None = None) -> bool:
    """Ask the CUDA allocator for expandable segments (less fragmentation).

    Must run before CUDA initialises; a value the user already set wins. Returns whether
    the setting was made here.
    """
    env = os.environ if environ is None else environ
    if env.get("PYTORCH_ALLOC_CONF") or env.get("PYTORCH_CUDA_ALLOC_CONF"):
        return False
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        log.debug("CUDA already initialised: expandable segments not set")
        return False
    env[allocator_env_var()] = "expandable_segments:True"
    return True


def apply_memory_cap(device: torch.device, max_gpu_memory_gb: float | None) -> int | None:
    """Cap what torch may allocate so the whole process stays under ``max_gpu_memory_gb``.

    The fraction handed to ``set_per_process_memory_fraction`` is computed against the
    device total after subtracting memory torch does not own (CUDA context, other
    processes). Returns the cap in bytes, or ``None`` when uncapped or not on CUDA.
    """
    max_gb = validate_max_gpu_memory(max_gpu_memory_gb)
    if max_gb is None or device.type != "cuda":
        return None
    torch.cuda.init()
    device = devices.with_index(device)
    free, total = torch.cuda.mem_get_info(device)
    not_torch = max(0, (total - free) - torch.cuda.memory_reserved(device))
    cap = min(int(max_gb * GIB), total - not_torch)
    torch.cuda.set_per_process_memory_fraction(cap / total, device)
    log.info(
        "GPU memory cap: %.2f GiB for torch (%.2f GiB held outside torch, %.2f GiB total)",
        cap / GIB,
        not_torch / GIB,
        total / GIB,
    )
    return cap


def should_clean_up(snapshot: Snapshot | None, threshold: float) -> bool:
    """True when usage passed the threshold: call between units of work, not per frame."""
    return snapshot is not None and snapshot.fraction >= threshold


def clean_up_if_needed(device: torch.device, snapshot: Snapshot | None, threshold: float) -> bool:
    """Run gc and empty the allocator cache when ``should_clean_up``; return whether it did."""
    if should_clean_up(snapshot, threshold):
        devices.clear_device_cache(device)
        return True
    return False
