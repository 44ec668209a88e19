"""Monitoring: snapshots, levels, NVML absent."""

import time
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


def cuda_answers(monkeypatch, used_by_nvml=True):
    """torch.cuda and NVML answers of a 16 GiB GPU (stand-ins: this machine has none)."""
    from sam2flow.memory import devices

    answers = {
        "is_initialized": True,
        "memory_allocated": 5 * GIB,
        "memory_reserved": 6 * GIB,
        "max_memory_allocated": 7 * GIB,
        "max_memory_reserved": 8 * GIB,
        "mem_get_info": (9 * GIB, 16 * GIB),
        "memory_stats": {
            "inactive_split_bytes.all.current": 123,
            "num_alloc_retries": 4,
            "num_ooms": 2,
        },
    }
    asked = []
    for name, value in answers.items():
        monkeypatch.setattr(
            torch.cuda, name, lambda *a, _n=name, _v=value: asked.append((_n, *a)) or _v
        )
    monkeypatch.setattr(devices, "device_uuid", lambda d: f"GPU-uuid-of-{d}")
    memory = nvml.NvmlMemory(total=16 * GIB, used=7 * GIB, free=9 * GIB, reserved=GIB // 2)
    monkeypatch.setattr(
        nvml,
        "nvml_memory",
        lambda uuid, index: (
            asked.append(("nvml", uuid, index)) or (memory if used_by_nvml else None)
        ),
    )
    return asked


def test_a_cuda_snapshot_holds_every_figure_torch_and_nvml_give(monkeypatch):
    asked = cuda_answers(monkeypatch)
    device = torch.device("cuda", 1)
    snap = take_snapshot(device, "start 0-9")
    assert (snap.stage, snap.device, snap.host_rss > 0) == ("start 0-9", "cuda:1", True)
    assert [snap.allocated, snap.reserved, snap.peak_allocated, snap.peak_reserved] == [
        5 * GIB, 6 * GIB, 7 * GIB, 8 * GIB
    ]  # fmt: skip
    assert (snap.free, snap.total) == (9 * GIB, 16 * GIB)
    assert (snap.inactive_split, snap.alloc_retries, snap.ooms) == (123, 4, 2)
    assert (snap.nvml_available, snap.nvml_used, snap.nvml_reserved) == (True, 7 * GIB, GIB // 2)
    assert snap.fraction == 6 / 16 and snap.level == "healthy"
    assert ("nvml", "GPU-uuid-of-cuda:1", 1) in asked
    assert ("memory_reserved", device) in asked and ("mem_get_info", device) in asked


def test_a_cuda_snapshot_measures_against_the_cap_and_without_nvml(monkeypatch):
    asked = cuda_answers(monkeypatch, used_by_nvml=False)
    snap = take_snapshot(torch.device("cuda"), "end", cap_bytes=8 * GIB)
    assert snap.fraction == 6 / 8 and snap.level == "caution"
    assert (snap.nvml_available, snap.nvml_used, snap.nvml_reserved) == (False, None, None)
    assert ("nvml", "GPU-uuid-of-cuda", 0) in asked  # no index: the first GPU


def test_a_cuda_not_yet_started_is_read_like_the_host(monkeypatch):
    cuda_answers(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    snap = take_snapshot(torch.device("cuda", 0), "start")
    assert snap.allocated is None and snap.total == psutil.virtual_memory().total


def test_an_mps_snapshot_is_the_drivers_memory_against_the_recommended_maximum(monkeypatch):
    from sam2flow.memory import devices

    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: 3.0 * GIB)
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: 4.0 * GIB)
    monkeypatch.setattr(devices, "total_memory", lambda d: 16 * GIB)
    snap = take_snapshot(torch.device("mps"), "start")
    assert (snap.allocated, snap.reserved, snap.total) == (3 * GIB, 4 * GIB, 16 * GIB)
    assert type(snap.allocated) is int and type(snap.reserved) is int
    assert snap.fraction == 0.25 and snap.free is None
    capped = take_snapshot(torch.device("mps"), "end", cap_bytes=5 * GIB)
    assert (capped.fraction, capped.level) == (0.8, "caution")


def test_a_cuda_snapshot_asks_torch_about_its_own_device_and_when(monkeypatch):
    asked = cuda_answers(monkeypatch)
    device = torch.device("cuda", 1)
    before = time.time()
    snap = take_snapshot(device, "start")
    assert before <= snap.time <= time.time()
    queries = {a for a in asked if a[0] not in ("is_initialized", "nvml")}
    assert queries == {
        (name, device)
        for name in (
            "memory_allocated",
            "memory_reserved",
            "max_memory_allocated",
            "max_memory_reserved",
            "mem_get_info",
            "memory_stats",
        )
    }


def test_allocator_counters_torch_does_not_report_are_zero(monkeypatch):
    cuda_answers(monkeypatch)
    monkeypatch.setattr(torch.cuda, "memory_stats", lambda device: {})
    snap = take_snapshot(torch.device("cuda", 0), "start")
    assert (snap.inactive_split, snap.alloc_retries, snap.ooms) == (0, 0, 0)


def test_a_device_that_reports_no_total_has_a_healthy_zero_fraction(monkeypatch):
    from sam2flow.memory import devices

    cuda_answers(monkeypatch)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (0, 0))
    assert take_snapshot(torch.device("cuda", 0), "start").fraction == 0.0
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: 0)
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: GIB)
    monkeypatch.setattr(devices, "total_memory", lambda d: 0)
    snap = take_snapshot(torch.device("mps"), "start")
    assert (snap.fraction, snap.level) == (0.0, "healthy")


def test_the_cpu_is_read_as_the_host_on_a_machine_with_mps(monkeypatch):
    from sam2flow.memory import devices

    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: GIB)
    snap = take_snapshot(torch.device("cpu"), "start")
    assert snap.reserved is None and snap.total == psutil.virtual_memory().total


def test_an_mps_snapshot_asks_the_total_of_the_mps_device(monkeypatch):
    from sam2flow.memory import devices

    asked = []
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: GIB)
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: GIB)
    monkeypatch.setattr(devices, "total_memory", lambda d: asked.append(d) or 4 * GIB)
    take_snapshot(torch.device("mps"), "start")
    assert asked == [torch.device("mps")]


def test_a_monitor_measures_against_the_cap_it_was_given(monkeypatch):
    from sam2flow.memory import devices

    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: GIB)
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: 4.0 * GIB)
    monkeypatch.setattr(devices, "total_memory", lambda d: 16 * GIB)
    mon = Monitor(torch.device("mps"), cap_bytes=5 * GIB)
    assert mon.snapshot("start").fraction == 0.8
    assert [s.fraction for s in mon.snapshots] == [0.8]
