"""Devices: CUDA, MPS and CPU behind one set of calls.

Every function here is a no-op (or returns ``None``) where a device lacks the feature,
so callers never branch on the device type themselves.
"""

from __future__ import annotations

import gc
import logging

import torch

from ..errors import UserError

log = logging.getLogger(__name__)


def with_index(device: torch.device) -> torch.device:
    """``cuda`` -> ``cuda:N`` (the current device): some torch.cuda calls, such as
    ``set_per_process_memory_fraction``, refuse a CUDA device without an index.

    >>> with_index(torch.device("cpu"))
    device(type='cpu')
    """
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def resolve_device(requested: str = "auto") -> torch.device:
    """Pick the device to run on.

    ``auto`` prefers CUDA, then MPS, then CPU, warning when it falls back to the CPU.
    An explicit ``cuda`` or ``mps`` that is not available (or a name torch does not know)
    is a ``UserError``.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    requested = (requested or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return with_index(torch.device("cuda"))
        if _mps_available():
            return torch.device("mps")
        log.warning("no CUDA or MPS device found: running on the CPU (slow)")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UserError(
            f"unknown device {requested!r}", None, "use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"device {requested!r} requested but CUDA is not available",
            None,
            "use device 'auto' or 'cpu' (or run where a GPU is)",
        )
    if device.type == "cuda":
        return with_index(device)
    if device.type == "mps" and not _mps_available():
        raise UserError(
            f"device {requested!r} requested but MPS is not available", None, "use 'auto'"
        )
    return device


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def clear_device_cache(device: torch.device, garbage_collection: bool = True) -> None:
    """Free what can be freed: Python garbage first, then the allocator's cached blocks."""
    if garbage_collection:
        gc.collect()
    if device.type == "cuda" and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    elif device.type == "mps" and _mps_available():
        torch.mps.empty_cache()


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so that timings and peaks are real."""
    if device.type == "cuda" and torch.cuda.is_initialized():
        torch.cuda.synchronize(device)
    elif device.type == "mps" and _mps_available():
        torch.mps.synchronize()


def reset_peak(device: torch.device) -> None:
    """Start a new peak measurement for one unit of work."""
    if device.type == "cuda" and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats(device)


def device_name(device: torch.device) -> str:
    """Human name of the device (the GPU model on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return "cpu"


def total_memory(device: torch.device) -> int | None:
    """Total bytes of device memory, or ``None`` on the CPU (where the host RSS counts)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "mps" and _mps_available():
        return int(torch.mps.recommended_max_memory())
    return None


def device_uuid(device: torch.device) -> str | None:
    """The CUDA device's UUID as NVML spells it (``GPU-...``), or ``None``."""
    if device.type != "cuda":
        return None
    uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith("GPU-") else f"GPU-{text}"
