"""Monitoring: a snapshot of memory at each stage of a unit of work, with a level.

The levels and their thresholds live here and nowhere else. The fraction compared with
them is the device memory torch reserved over the cap (or the device total when uncapped);
on the CPU it is the machine's memory in use, since that is what runs out.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import psutil
import torch

from . import devices, nvml

#: Level by used fraction: below 0.70 healthy, below 0.85 caution, below 0.95 warning.
LEVEL_THRESHOLDS: tuple[tuple[float, str], ...] = (
    (0.70, "healthy"),
    (0.85, "caution"),
    (0.95, "warning"),
)
CRITICAL = "critical"
LEVEL_ORDER = ("healthy", "caution", "warning", CRITICAL)


def level_for(fraction: float) -> str:
    """Name the level of a used fraction.

    >>> level_for(0.5), level_for(0.9), level_for(0.99)
    ('healthy', 'warning', 'critical')
    """
    for limit, name in LEVEL_THRESHOLDS:
        if fraction < limit:
            return name
    return CRITICAL


def worst_level(levels: list[str]) -> str:
    """The most severe of several levels (``healthy`` for none)."""
    return max(levels, key=LEVEL_ORDER.index, default="healthy")


@dataclass
class Snapshot:
    """Memory at one stage; bytes throughout, ``None`` where the device lacks the figure."""

    stage: str
    time: float
    device: str
    allocated: int | None = None
    reserved: int | None = None
    peak_allocated: int | None = None
    peak_reserved: int | None = None
    free: int | None = None
    total: int | None = None
    inactive_split: int | None = None
    alloc_retries: int | None = None
    ooms: int | None = None
    nvml_available: bool = False
    nvml_used: int | None = None
    nvml_reserved: int | None = None
    host_rss: int = 0
    fraction: float = 0.0
    level: str = "healthy"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def take_snapshot(device: torch.device, stage: str, cap_bytes: int | None = None) -> Snapshot:
    """Read every memory figure the device offers, at ``stage``."""
    snap = Snapshot(stage=stage, time=time.time(), device=str(device))
    snap.host_rss = psutil.Process().memory_info().rss
    if device.type == "cuda" and torch.cuda.is_initialized():
        snap.allocated = torch.cuda.memory_allocated(device)
        snap.reserved = torch.cuda.memory_reserved(device)
        snap.peak_allocated = torch.cuda.max_memory_allocated(device)
        snap.peak_reserved = torch.cuda.max_memory_reserved(device)
        snap.free, snap.total = torch.cuda.mem_get_info(device)
        stats = torch.cuda.memory_stats(device)
        snap.inactive_split = int(stats.get("inactive_split_bytes.all.current", 0))
        snap.alloc_retries = int(stats.get("num_alloc_retries", 0))
        snap.ooms = int(stats.get("num_ooms", 0))
        mem = nvml.nvml_memory(devices.device_uuid(device), device.index or 0)
        snap.nvml_available = mem is not None
        if mem is not None:
            snap.nvml_used, snap.nvml_reserved = mem.used, mem.reserved
        limit = cap_bytes or snap.total
        snap.fraction = snap.reserved / limit if limit else 0.0
    elif device.type == "mps" and devices._mps_available():
        snap.allocated = int(torch.mps.current_allocated_memory())
        snap.reserved = int(torch.mps.driver_allocated_memory())
        snap.total = devices.total_memory(device)
        limit = cap_bytes or snap.total
        snap.fraction = snap.reserved / limit if limit else 0.0
    else:
        vm = psutil.virtual_memory()
        snap.total, snap.free = vm.total, vm.available
        snap.fraction = (vm.total - vm.available) / vm.total
        snap.nvml_available = nvml.nvml_available()
    snap.level = level_for(snap.fraction)
    return snap


class Monitor:
    """Collects snapshots for a unit of work; when disabled every call is a no-op.

    >>> mon = Monitor(torch.device("cpu"), enabled=False)
    >>> mon.snapshot("start") is None
    True
    """

    def __init__(self, device: torch.device, enabled: bool = True, cap_bytes: int | None = None):
        self.device = device
        self.enabled = enabled
        self.cap_bytes = cap_bytes
        self.snapshots: list[Snapshot] = []

    def snapshot(self, stage: str) -> Snapshot | None:
        if not self.enabled:
            return None
        snap = take_snapshot(self.device, stage, self.cap_bytes)
        self.snapshots.append(snap)
        return snap

    def worst_level(self) -> str:
        return worst_level([s.level for s in self.snapshots])


def device_status() -> list[dict]:
    """A snapshot of every device on this machine (CUDA GPUs, MPS, then the CPU)."""
    targets = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if devices._mps_available():
        targets.append(torch.device("mps"))
    targets.append(torch.device("cpu"))
    rows = []
    for dev in targets:
        if dev.type == "cuda":
            torch.cuda.init()
        snap = take_snapshot(dev, "status")
        row = snap.to_dict()
        row["name"] = devices.device_name(dev)
        row["nvml_available"] = nvml.nvml_available()
        # MPS has no free figure: what the driver holds is what is used.
        row["used"] = (snap.total - snap.free) if snap.free is not None else snap.reserved
        rows.append(row)
    return rows


def format_status(row: dict) -> str:
    """One line of ``sam2flow memory status``."""
    gib = 1024**3

    def g(v):
        return "n/a" if v is None else f"{v / gib:.2f} GiB"

    return (
        f"{row['device']:<7} {row['name']}: used {g(row['used'])}, free {g(row['free'])}, "
        f"total {g(row['total'])}, fragmentation {g(row.get('inactive_split'))}, "
        f"level {row['level']}, "
        f"NVML {'available' if row['nvml_available'] else 'unavailable'}"
    )
