"""The memory guard: keep a PyTorch batch job alive on a GPU that is too small.

A library of its own (torch, nvidia-ml-py and psutil only; never SAM 2 or Snakemake):
devices, monitoring, limits, OOM classification, graduated recovery, adaptive sizing and
estimation. See ``MemoryGuard`` for the one object most callers need.
"""

from .devices import clear_device_cache, resolve_device
from .estimate import estimate, largest_batch_that_fits
from .guard import GuardConfig, MemoryGuard
from .limits import validate_threshold
from .monitoring import Monitor, Snapshot, take_snapshot
from .oom import is_oom_error
from .recovery import Attempt, Plan, UnitRecord, run_with_recovery

__all__ = [
    "Attempt",
    "GuardConfig",
    "MemoryGuard",
    "Monitor",
    "Plan",
    "Snapshot",
    "UnitRecord",
    "clear_device_cache",
    "estimate",
    "is_oom_error",
    "largest_batch_that_fits",
    "resolve_device",
    "run_with_recovery",
    "take_snapshot",
    "validate_threshold",
]
