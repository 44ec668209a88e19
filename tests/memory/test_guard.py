"""The guard's configuration from config ``memory:`` and reruns, and where a unit's first
chunk size came from (the record's ``sizing``)."""

from __future__ import annotations

import pytest
import torch

from sam2flow.memory import GuardConfig, MemoryGuard, devices, limits
from sam2flow.memory import guard as guard_module
from sam2flow.memory.sizing import SizeMemory, sizing_key
from sam2flow.plan.settings import RECORD_ONLY, mask_settings

CPU = torch.device("cpu")
GIB = 1024**3


def test_only_options_that_change_masks_are_mask_settings():
    options = {k: 1 for k in RECORD_ONLY} | {"min_chunk": 30, "force_cpu_offload": True}
    assert mask_settings(options) == {"min_chunk": 30, "force_cpu_offload": True}
    assert RECORD_ONLY == {
        "monitoring", "memory_threshold", "sizing_file", "sizing_grow_after", "fail_on_skip"
    }  # fmt: skip


def test_config_from_options_ignores_unknown_keys_and_keeps_the_rest():
    config = GuardConfig.from_options({"min_chunk": "30", "fail_on_skip": True, "x": 1})
    assert config.min_chunk == 30 and isinstance(config.min_chunk, int)
    assert config.start_chunk is None and config.force_cpu_offload is False


@pytest.mark.parametrize("rerun", ["", "same"])
def test_a_plain_rerun_runs_as_configured(rerun):
    config = GuardConfig.from_options({"min_chunk": 40}, rerun)
    assert (config.start_chunk, config.force_cpu_offload) == (None, False)


def test_a_chunked_rerun_starts_at_the_floor_without_offload():
    config = GuardConfig.from_options({"min_chunk": 40}, "chunked")
    assert (config.start_chunk, config.force_cpu_offload) == (40, False)
    kept = GuardConfig.from_options({"min_chunk": 40, "force_cpu_offload": True}, "chunked")
    assert kept.force_cpu_offload is True


def test_an_offload_rerun_starts_at_the_floor_with_offload():
    config = GuardConfig.from_options({"min_chunk": 40}, "offload")
    assert (config.start_chunk, config.force_cpu_offload) == (40, True)


def test_an_unknown_rerun_strategy_names_the_choices():
    with pytest.raises(ValueError, match=r"offload, chunked or same, got 'later'"):
        GuardConfig.from_options({}, "later")


@pytest.mark.parametrize("bad", [0, -3])
def test_a_floor_under_one_frame_is_refused(bad):
    with pytest.raises(ValueError, match=rf"min_chunk must be >= 1, got {bad}"):
        GuardConfig(min_chunk=bad)
    assert GuardConfig(min_chunk=1).min_chunk == 1


def test_sizing_memory_only_with_a_file_and_adaptive_sizing(tmp_path):
    path = tmp_path / "sizing.json"
    assert isinstance(MemoryGuard(GuardConfig(sizing_file=path), CPU).sizes, SizeMemory)
    assert MemoryGuard(GuardConfig(), CPU).sizes is None
    off = GuardConfig(sizing_file=path, adaptive_batch_size=False)
    assert MemoryGuard(off, CPU).sizes is None


def whole(plan, carry):
    return plan.last_frame


def test_a_unit_runs_whole_unless_told_otherwise():
    record = MemoryGuard(GuardConfig(), CPU).run(whole, 0, 99, key="k")
    assert record.sizing == {
        "file": None, "key": "k", "start_chunk": None, "after_whole": None, "from": "whole",
        "warning": None,
    }  # fmt: skip
    assert [(a.first_frame, a.last_frame) for a in record.attempts] == [(0, 99)]


def test_a_rerun_strategy_sets_the_first_chunk():
    guard = MemoryGuard(GuardConfig.from_options({"min_chunk": 30}, "chunked"), CPU)
    record = guard.run(whole, 0, 99)
    assert (record.sizing["from"], record.sizing["start_chunk"]) == ("rerun strategy", 30)
    # 100 frames in chunks of about 30, none a runt
    assert [a.last_frame - a.first_frame + 1 for a in record.attempts] == [34, 33, 33]


def test_the_callers_chunk_wins_but_never_goes_under_the_floor():
    guard = MemoryGuard(GuardConfig.from_options({"min_chunk": 30}, "chunked"), CPU)
    record = guard.run(whole, 0, 99, start_chunk=50)
    assert (record.sizing["from"], record.sizing["start_chunk"]) == ("caller", 50)
    assert guard.run(whole, 0, 99, start_chunk=5).sizing["start_chunk"] == 30
    assert guard.run(whole, 0, 9, start_chunk=5).sizing["start_chunk"] == 10  # a short unit


def test_the_sizing_file_sets_the_chunk_after_a_whole_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=60")
    guard = MemoryGuard(GuardConfig(sizing_file=tmp_path / "s.json", min_chunk=25), CPU)

    def work(plan, carry):
        return plan.last_frame

    first = guard.run(work, 0, 199, key="k")
    assert first.sizing["after_whole"] is None and first.sizing["file"] == str(tmp_path / "s.json")
    second = guard.run(work, 0, 199, key="k")
    assert second.sizing["after_whole"] == 50 and second.sizing["from"] == "whole"
    assert [a.chunk_size for a in second.attempts] == [200, 50, 50, 50, 50]
    other = guard.run(work, 0, 199, key="another workload")
    assert other.sizing["after_whole"] is None


def test_monitoring_snapshots_each_unit_and_off_records_none():
    on = MemoryGuard(GuardConfig(), CPU).run(whole, 0, 9)
    assert on.snapshots and on.snapshots[-1]["stage"] == "after unit"
    assert MemoryGuard(GuardConfig(monitoring=False), CPU).run(whole, 0, 9).snapshots == []


def test_a_unit_without_work_has_a_record_of_its_frames():
    record = MemoryGuard(GuardConfig(), CPU).record_without_work(12)
    assert record.frames_ok == 0 and record.attempts == []
    assert record.to_dict()["frames_total"] == 12 and record.status == "ok"


def test_a_guard_without_a_device_runs_on_auto_and_a_named_one_is_taken(caplog):
    assert MemoryGuard(GuardConfig(monitoring=False)).device == devices.resolve_device("auto")
    caplog.clear()
    assert MemoryGuard(GuardConfig(monitoring=False), "cpu").device == CPU
    assert caplog.text == ""  # auto would have warned that it fell back to the CPU


def test_the_memory_cap_reaches_every_record_and_the_monitor(monkeypatch):
    asked, monitors = [], []
    monkeypatch.setattr(limits, "apply_memory_cap", lambda d, gb: asked.append((d, gb)) or GIB)
    real_monitor = guard_module.Monitor
    monkeypatch.setattr(guard_module, "Monitor", lambda *a: monitors.append(a) or real_monitor(*a))
    guard = MemoryGuard(GuardConfig(max_gpu_memory_gb=1.5), CPU)
    assert asked == [(CPU, 1.5)] and guard.cap_bytes == GIB
    assert guard.record_without_work(3).memory_cap_bytes == GIB
    assert guard.run(whole, 0, 9).memory_cap_bytes == GIB
    assert monitors == [(CPU, True, GIB)]


def test_the_sizing_key_names_this_device_and_workload(monkeypatch):
    guard = MemoryGuard(GuardConfig(monitoring=False), CPU)
    assert guard.sizing_key("tiny", 256, 2) == sizing_key("cpu", None, "tiny", 256, 2, None)
    monkeypatch.setattr(limits, "apply_memory_cap", lambda device, gb: GIB)
    monkeypatch.setattr(devices, "total_memory", lambda device: 8 * GIB)
    capped = MemoryGuard(GuardConfig(monitoring=False, max_gpu_memory_gb=1), CPU)
    assert capped.sizing_key("tiny", 256, 2) == sizing_key("cpu", 8 * GIB, "tiny", 256, 2, GIB)
    keys = {guard.sizing_key(*w) for w in [("tiny", 256, 2), ("small", 256, 2), ("tiny", 512, 2)]}
    assert len(keys | {guard.sizing_key("tiny", 256, 3)}) == 4
    # A size learnt in bf16 or on 1080p frames says nothing of fp32 or of 4K frames.
    workload = ("tiny", 256, 2, "bf16", (1080, 1920))
    expected = sizing_key("cpu", 8 * GIB, "tiny", 256, 2, None, "bf16", (1080, 1920))
    assert guard.sizing_key(*workload) == expected
    assert guard.sizing_key(*workload) != guard.sizing_key("tiny", 256, 2, "bf16", (2160, 3840))


def test_the_sizing_file_is_asked_for_this_units_length(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=100")
    guard = MemoryGuard(GuardConfig(sizing_file=tmp_path / "s.json", min_chunk=25), CPU)
    asked = []
    guard.sizes.size_after_whole_fails = lambda key, frames: asked.append((key, frames)) or 40
    record = guard.run(whole, 100, 299, key="k")
    assert asked == [("k", 200)] and record.sizing["after_whole"] == 40
    assert [a.chunk_size for a in record.attempts] == [200, 40, 40, 40, 40, 40]


def test_a_short_unit_late_in_the_video_starts_at_its_own_length():
    guard = MemoryGuard(GuardConfig(min_chunk=30, monitoring=False), CPU)
    assert guard.run(whole, 1000, 1009, start_chunk=5).sizing["start_chunk"] == 10


@pytest.mark.parametrize("action", ["read", "update"])
def test_a_sizing_file_that_fails_is_a_warning_and_the_unit_runs(tmp_path, caplog, action):
    guard = MemoryGuard(GuardConfig(sizing_file=tmp_path / "s.json", monitoring=False), CPU)

    def fail(*args):
        raise OSError("disk gone")

    setattr(guard.sizes, {"read": "size_after_whole_fails", "update": "update"}[action], fail)
    record = guard.run(whole, 0, 9, key="k")
    text = f"could not {action} the sizing file {tmp_path / 's.json'} (OSError: disk gone)"
    assert record.status == "ok" and record.sizing["warning"] == text
    assert [r.getMessage() for r in caplog.records if r.name == "sam2flow.memory.guard"] == [
        f"{text}; the batch goes on"
    ]


def test_forced_offload_reaches_every_chunk():
    seen = []
    guard = MemoryGuard(GuardConfig(force_cpu_offload=True, monitoring=False), CPU)
    guard.run(lambda plan, carry: seen.append(plan.offload), 0, 59, start_chunk=30)
    assert seen == [True, True]


def test_the_monitor_sees_each_attempt_and_a_low_threshold_cleans_up(monkeypatch):
    cleared = []
    monkeypatch.setattr(devices, "clear_device_cache", lambda d, *a: cleared.append(d))
    record = MemoryGuard(GuardConfig(memory_threshold=1e-6), CPU).run(whole, 0, 9)
    stages = [s["stage"] for s in record.snapshots]
    assert stages == ["start 0-9", "end 0-9", "after unit"] and cleared[-1] == CPU


def test_the_guard_hands_its_options_and_the_callers_to_recovery(monkeypatch):
    """On the CPU, CPU fallback is no extra level: what the guard passes is checked here."""
    passed = []
    real = guard_module.run_with_recovery
    monkeypatch.setattr(
        guard_module, "run_with_recovery", lambda *a, **kw: passed.append(kw) or real(*a, **kw)
    )
    config = GuardConfig(allow_cpu_fallback=True, min_chunk=7, monitoring=False)

    def frames_of(a, b):
        return list(range(a + 100, b + 101))

    carried = []
    MemoryGuard(config, CPU).run(
        lambda plan, carry: carried.append(carry) or "next",
        0, 19, carry="seed", anchors=[5], frames_of=frames_of,
    )  # fmt: skip
    kw = passed[0]
    assert (kw["allow_cpu_fallback"], kw["min_chunk"], kw["carry"]) == (True, 7, "seed")
    assert list(kw["anchors"]) == [5] and kw["frames_of"] is frames_of
    assert carried[0] == "seed"
