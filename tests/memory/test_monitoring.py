"""Monitoring: snapshots, levels, NVML absent."""

from typing import NamedTuple

import psutil
import torch

from sam2flow.memory import nvml
from sam2flow.memory.monitoring import (
    LEVEL_THRESHOLDS,
    Monitor,
    device_status,
    format_status,
    level_for,
    take_snapshot,
    worst_level,
)

GIB = 1024**3


def test_levels_follow_the_documented_thresholds():
    assert [limit for limit, _ in LEVEL_THRESHOLDS] == [0.70, 0.85, 0.95]
    assert level_for(0.0) == "healthy"
    assert level_for(0.70) == "caution"
    assert level_for(0.85) == "warning"
    assert level_for(0.95) == "critical"


def test_cpu_snapshot_has_host_memory_and_a_level():
    snap = take_snapshot(torch.device("cpu"), "start")
    assert snap.host_rss > 0 and snap.total > snap.free > 0
    assert 0 < snap.fraction < 1 and snap.level in ("healthy", "caution", "warning", "critical")


def test_nvml_missing_is_recorded_as_unavailable(monkeypatch):
    monkeypatch.setattr(nvml, "_nvml", lambda: None)
    assert nvml.nvml_available() is False
    assert nvml.nvml_memory("GPU-0000") is None
    snap = take_snapshot(torch.device("cpu"), "start")
    assert snap.nvml_available is False and snap.nvml_used is None


def test_nvml_library_absent_for_real_does_not_raise():
    # On a machine without the NVIDIA driver, nvmlInit fails: unavailable, never an error.
    if torch.cuda.is_available():
        return
    nvml._nvml.cache_clear()
    assert nvml.nvml_available() is False


def test_disabled_monitor_records_nothing():
    mon = Monitor(torch.device("cpu"), enabled=False)
    assert mon.snapshot("x") is None and mon.snapshots == []


def test_levels_change_exactly_at_the_thresholds():
    below = [level_for(x - 1e-9) for x in (0.70, 0.85, 0.95)]
    assert below == ["healthy", "caution", "warning"]
    assert level_for(1.5) == "critical"


def test_the_worst_level_is_the_most_severe_and_none_is_healthy():
    assert worst_level([]) == "healthy"
    assert worst_level(["caution", "healthy"]) == "caution"
    assert worst_level(["warning", "critical", "caution"]) == "critical"
    assert worst_level(["healthy", "warning", "caution"]) == "warning"


class Memory(NamedTuple):
    total: int
    available: int


def fixed_host(monkeypatch, total=16 * GIB, available=4 * GIB):
    """The machine's memory figures, fixed so that a level is a known one."""
    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory(total, available))


def test_a_cpu_snapshot_is_the_machines_used_fraction(monkeypatch):
    fixed_host(monkeypatch)
    snap = take_snapshot(torch.device("cpu"), "after chunk 2", cap_bytes=GIB)
    assert (snap.stage, snap.device, snap.total, snap.free) == (
        "after chunk 2",
        "cpu",
        16 * GIB,
        4 * GIB,
    )
    assert snap.fraction == 0.75 and snap.level == "caution"
    assert snap.host_rss > 0
    assert snap.to_dict()["fraction"] == 0.75 and snap.to_dict()["stage"] == "after chunk 2"


def test_an_enabled_monitor_keeps_every_snapshot_and_their_worst_level(monkeypatch):
    mon = Monitor(torch.device("cpu"))
    fixed_host(monkeypatch, available=8 * GIB)
    first = mon.snapshot("start")
    fixed_host(monkeypatch, available=GIB // 2)
    mon.snapshot("end")
    fixed_host(monkeypatch, available=8 * GIB)
    assert [s.stage for s in mon.snapshots] == ["start", "end"] and mon.snapshots[0] is first
    assert [s.level for s in mon.snapshots] == ["healthy", "critical"]
    assert mon.worst_level() == "critical"


def test_status_of_a_cpu_only_machine(monkeypatch):
    fixed_host(monkeypatch)
    if torch.cuda.device_count():
        return
    rows = device_status()
    assert [r["device"] for r in rows] == ["cpu"]
    assert rows[-1]["used"] == 12 * GIB and rows[-1]["name"]
    assert rows[-1]["nvml_available"] is nvml.nvml_available()


def test_a_status_line_in_gib_with_na_for_what_the_device_lacks():
    row = {
        "device": "cuda:0",
        "name": "GPU",
        "used": 3 * GIB,
        "free": GIB // 2,
        "total": 16 * GIB,
        "inactive_split": GIB // 4,
        "level": "warning",
        "nvml_available": True,
    }
    assert format_status(row) == (
        "cuda:0  GPU: used 3.00 GiB, free 0.50 GiB, total 16.00 GiB, fragmentation 0.25 GiB, "
        "level warning, NVML available"
    )
    row.update(free=None, inactive_split=None, nvml_available=False)
    assert format_status(row).endswith(
        "free n/a, total 16.00 GiB, fragmentation n/a, level warning, NVML unavailable"
    )


def test_status_lists_every_gpu_then_mps_then_the_cpu(monkeypatch):
    """On a machine with two GPUs and MPS (torch's answers stood in): one row each, in
    that order, with what is used taken from the free memory where the device says it."""
    from sam2flow.memory import devices, monitoring

    inits = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "init", lambda: inits.append(1))
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    monkeypatch.setattr(devices, "device_name", lambda d: f"name of {d}")
    monkeypatch.setattr(nvml, "nvml_available", lambda: True)

    def snapshot(device, stage):
        snap = monitoring.Snapshot(stage=stage, time=0.0, device=str(device))
        snap.total, snap.reserved = 16 * GIB, 3 * GIB
        snap.free = {"cuda:0": 10 * GIB, "cpu": 4 * GIB}.get(str(device))
        return snap

    monkeypatch.setattr(monitoring, "take_snapshot", snapshot)
    rows = device_status()
    assert [(r["device"], r["name"], r["used"] // GIB, r["stage"]) for r in rows] == [
        ("cuda:0", "name of cuda:0", 6, "status"),
        ("cuda:1", "name of cuda:1", 3, "status"),  # no free figure: torch's reserved
        ("mps", "name of mps", 3, "status"),
        ("cpu", "name of cpu", 12, "status"),
    ]
    assert inits == [1, 1] and all(r["nvml_available"] is True for r in rows)
