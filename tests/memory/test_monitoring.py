"""Monitoring: snapshots, levels, NVML absent."""

import torch

from sam2flow.memory import nvml
from sam2flow.memory.monitoring import LEVEL_THRESHOLDS, Monitor, level_for, take_snapshot


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
