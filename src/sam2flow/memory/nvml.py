"""NVML through ``nvidia-ml-py`` (module ``pynvml``): what the driver says a GPU uses.

NVML sees memory torch does not own (CUDA context, other processes). A machine without
the driver or the package is recorded as unavailable, never an error.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NvmlMemory:
    """Device memory in bytes as NVML reports it (``reserved`` is 0 where v1 is used)."""

    total: int
    used: int
    free: int
    reserved: int


@functools.lru_cache(maxsize=1)
def _nvml():
    """Import and initialise NVML once; ``None`` if it is not there."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, driver errors
        log.debug("NVML unavailable: %s", exc)
        return None


def nvml_available() -> bool:
    """True when NVML loaded and a driver answered."""
    return _nvml() is not None


def _handle(pynvml, uuid: str | None, index: int):
    # NVML's index ignores CUDA_VISIBLE_DEVICES: the UUID from torch names the right GPU.
    if uuid:
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(uuid)
        except Exception:
            log.debug("NVML has no device with UUID %s; using index %d", uuid, index)
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def nvml_memory(uuid: str | None = None, index: int = 0) -> NvmlMemory | None:
    """Memory of one GPU (v2 with its ``reserved`` field, else v1), or ``None``."""
    pynvml = _nvml()
    if pynvml is None:
        return None
    try:
        handle = _handle(pynvml, uuid, index)
        try:
            info = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
            reserved = int(getattr(info, "reserved", 0))
        except Exception:
            info = pynvml.nvmlDeviceGetMemoryInfo(handle)
            reserved = 0
        return NvmlMemory(int(info.total), int(info.used), int(info.free), reserved)
    except Exception as exc:
        log.debug("NVML query failed: %s", exc)
        return None
