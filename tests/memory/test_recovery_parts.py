"""The parts of graduated recovery one at a time: sizes, levels, frame ranges, one attempt's
record and a unit's record, each through its exact result."""

from __future__ import annotations

import logging
import types

import pytest
import torch

from sam2flow.memory import Monitor, run_with_recovery
from sam2flow.memory.recovery import (
    UnitRecord,
    chunk_size_at,
    describe_frames,
    frame_ranges,
    levels_for,
    next_chunk_size,
    unreachable,
)

CPU = torch.device("cpu")


def test_a_failed_size_halves_down_to_the_floor_and_not_below():
    assert next_chunk_size(401, 25) == 200
    assert next_chunk_size(41, 25) == 25  # half would be under the floor
    assert next_chunk_size(26, 25) == 25
    assert next_chunk_size(25, 25) is None and next_chunk_size(3, 25) is None
    assert next_chunk_size(2, 1) == 1 and next_chunk_size(1, 1) is None


@pytest.mark.parametrize(
    "chunk, remaining, floor, size",
    [
        (50, 50, 25, 50),  # the rest fits: all of it
        (50, 40, 25, 40),
        (50, 100, 25, 50),  # 50 + 50
        (50, 75, 25, 50),  # 50 + 25: the last is at the floor
        (50, 74, 25, 37),  # 50 + 24 would leave a runt: 37 + 37
        (25, 51, 25, 26),  # 26 + 25
        (30, 100, 30, 34),  # 34 + 33 + 33
        (10, 29, 25, 29),  # one chunk of the floor or more
    ],
)
def test_the_next_chunk_never_leaves_a_runt(chunk, remaining, floor, size):
    assert chunk_size_at(chunk, remaining, floor) == size


def test_levels_after_the_floor():
    cuda = torch.device("cuda", 0)
    assert levels_for(CPU, False, False) == ["chunked", "offload"]
    assert levels_for(CPU, True, True) == ["offload"]  # the CPU has no CPU fallback
    assert levels_for(cuda, False, True) == ["chunked", "offload", "cpu"]
    assert levels_for(cuda, True, False) == ["offload"]


def test_frames_as_runs_and_in_words():
    assert frame_ranges([3, 1, 2, 7, 9, 8]) == [[1, 3], [7, 9]]
    assert frame_ranges([5]) == [[5, 5]] and frame_ranges([]) == []
    assert describe_frames(range(0, 10)) == "frames 0-9"
    assert describe_frames([*range(20, 30), *range(0, 10)]) == "frames 0-9, 20-29"
    assert unreachable([4, 5, 6]) == (
        "no mask to continue from: frames 4-6 could not be segmented, "
        "and no frame with its own prompt comes before these"
    )


def test_a_unit_without_work_has_every_field_of_a_record():
    record = UnitRecord.not_run(40, CPU, 123).to_dict()
    assert {k: record[k] for k in record if k not in ("gpu_name",)} == {
        "status": "ok",
        "frames_total": 40,
        "frames_ok": 0,
        "frames_skipped": 0,
        "device": "cpu",
        "memory_cap_bytes": 123,
        "status_level": "healthy",
        "peak_allocated_bytes": None,
        "final_chunk_size": 0,
        "attempts": [],
        "skipped_ranges": [],
        "skip_reason": None,
        "skip_reasons": [],
        "snapshots": [],
        "sizing": None,
        "failure_cap": None,
    }
    assert record["gpu_name"]


def oom_over(limit, text="CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail"):
    def work(plan, carry):
        if plan.frames > limit:
            raise torch.OutOfMemoryError(text)
        return plan.last_frame

    return work


def test_each_attempt_records_its_range_level_outcome_and_first_error_line():
    rec = run_with_recovery(oom_over(30), 10, 69, device=CPU, min_chunk=25)
    got = [(a.level, a.chunk_size, a.first_frame, a.last_frame, a.outcome) for a in rec.attempts]
    assert got == [
        ("whole", 60, 10, 69, "oom"),
        ("chunked", 30, 10, 39, "ok"),
        ("chunked", 30, 40, 69, "ok"),
    ]
    assert rec.attempts[0].error == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert rec.attempts[1].error is None and all(a.seconds >= 0 for a in rec.attempts)
    assert (rec.status, rec.frames_ok, rec.final_chunk_size) == ("recovered", 60, 30)


def test_an_oom_without_a_message_is_named_by_its_type():
    rec = run_with_recovery(oom_over(30, text=""), 0, 59, device=CPU)
    assert rec.attempts[0].error == "OutOfMemoryError"


def test_each_attempt_is_monitored_at_its_start_and_end():
    monitor = Monitor(CPU)
    run_with_recovery(oom_over(30), 0, 59, device=CPU, monitor=monitor)
    stages = [s.stage for s in monitor.snapshots]
    assert stages == ["start 0-59", "end 0-59", "start 0-29", "end 0-29", "start 30-59",
                      "end 30-59"]  # fmt: skip


def test_the_carry_of_a_failed_attempt_is_dropped():
    seen = []

    def work(plan, carry):
        seen.append(carry)
        if plan.frames > 30:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return f"after {plan.last_frame}"

    run_with_recovery(work, 0, 59, device=CPU, carry="start")
    assert seen == ["start", "start", "after 29"]


@pytest.mark.parametrize("first, last, floor", [(5, 4, 25), (0, 9, 0)])
def test_an_empty_unit_or_a_floor_under_one_is_refused(first, last, floor):
    with pytest.raises(ValueError, match=r"empty unit: first=5, last=4|min_chunk must be >= 1"):
        run_with_recovery(oom_over(99), first, last, device=CPU, min_chunk=floor)


def test_a_start_chunk_longer_than_the_unit_runs_it_whole():
    rec = run_with_recovery(oom_over(99), 0, 59, device=CPU, start_chunk=500)
    assert [(a.level, a.chunk_size) for a in rec.attempts] == [("whole", 60)]


def test_a_skip_records_both_reasons_and_ranges():
    rec = run_with_recovery(oom_over(0), 0, 59, device=CPU, min_chunk=25, anchors=[40])
    assert rec.status == "skipped" and rec.skipped_ranges == [(0, 29), (30, 39), (40, 59)]
    assert rec.skip_reasons[0] == (
        "out of memory at every level down to 30 frames: "
        "CUDA out of memory. Tried to allocate 2.00 GiB"
    )
    assert rec.skip_reasons[1] == unreachable(list(range(0, 30)))
    assert rec.skip_reasons[2].startswith("out of memory at every level down to 20 frames")
    assert rec.skip_reason == rec.skip_reasons[0] and rec.frames_skipped == 60
    assert rec.to_dict()["skipped_ranges"] == [[0, 29], [30, 39], [40, 59]]  # JSON lists


def test_a_units_record_names_its_device_frames_and_level():
    rec = run_with_recovery(oom_over(30), 0, 59, device=CPU)
    got = rec.to_dict()
    assert {k: got[k] for k in ("frames_total", "device", "gpu_name", "status_level")} == {
        "frames_total": 60,
        "device": "cpu",
        "gpu_name": "cpu",
        "status_level": "healthy",
    }
    assert got["peak_allocated_bytes"] is None  # the CPU has no allocator peak


def test_a_single_frame_unit_and_a_floor_of_one_frame_run():
    one = run_with_recovery(oom_over(5), 7, 7, device=CPU)
    assert [(a.first_frame, a.last_frame) for a in one.attempts] == [(7, 7)]
    assert (one.status, one.frames_ok) == ("ok", 1)
    rec = run_with_recovery(oom_over(1), 0, 3, device=CPU, min_chunk=1)
    assert [a.chunk_size for a in rec.attempts] == [4, 2, 1, 1, 1, 1]
    assert (rec.status, rec.frames_ok) == ("recovered", 4)


def test_chunks_halve_down_to_the_floor_asked_for():
    rec = run_with_recovery(oom_over(10), 0, 39, device=CPU, min_chunk=10)
    assert [a.chunk_size for a in rec.attempts] == [40, 20, 10, 10, 10, 10]


def test_a_failed_chunk_that_halving_cannot_shrink_goes_to_the_next_level():
    """74 frames fail whole and as 37 + 37; halving 37 gives 25, but 74 frames in chunks
    of 25 would leave a runt, so they are spread as 37 again: the next level is tried."""

    def work(plan, carry):
        if plan.frames > 30 and not plan.offload:
            raise torch.OutOfMemoryError("CUDA out of memory")

    rec = run_with_recovery(work, 0, 73, device=CPU, min_chunk=25)
    assert [(a.level, a.chunk_size, a.outcome) for a in rec.attempts] == [
        ("whole", 74, "oom"),
        ("chunked", 37, "oom"),
        ("offload", 37, "ok"),
        ("offload", 37, "ok"),
    ]


def test_every_attempt_and_every_skip_is_logged_in_one_line(caplog):
    caplog.set_level(logging.INFO, logger="sam2flow.memory.recovery")
    run_with_recovery(oom_over(30), 0, 59, device=CPU)
    run_with_recovery(oom_over(0, text="CUDA out of memory"), 0, 24, device=CPU)
    assert [r.getMessage() for r in caplog.records if r.name == "sam2flow.memory.recovery"] == [
        "frames 0-59 (60, level whole): oom (CUDA out of memory. Tried to allocate 2.00 GiB)",
        "frames 0-29 (30, level chunked): ok",
        "frames 30-59 (30, level chunked): ok",
        "frames 0-24 (25, level whole): oom (CUDA out of memory)",
        "frames 0-24 (25, level offload): oom (CUDA out of memory)",
        "skipping frames 0-24: out of memory at every level down to 25 frames: CUDA out of memory",
    ]


def test_narrowing_bisects_at_the_anchor_nearest_the_middle_then_starts_again_at_the_first_level():
    calls = []

    def work(plan, carry):
        calls.append((plan.first_frame, plan.last_frame, plan.offload))
        if plan.first_frame < 5:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return plan.last_frame

    rec = run_with_recovery(work, 0, 29, device=CPU, min_chunk=25, anchors=[10, 20])
    assert calls == [(0, 29, False), (0, 29, True), (0, 9, True), (10, 29, False)]
    assert rec.skipped_ranges == [(0, 9)] and rec.frames_ok == 20


def test_an_anchor_on_the_units_last_frame_is_where_work_starts_again():
    def work(plan, carry):
        if plan.first_frame < 59:
            raise torch.OutOfMemoryError("CUDA out of memory")

    rec = run_with_recovery(work, 0, 59, device=CPU, min_chunk=25, anchors=[59])
    assert rec.frames_ok == 1 and rec.skipped_ranges[-1][1] == 58


def test_the_cpu_fallback_is_off_unless_asked_and_runs_on_the_cpu():
    calls = []

    def work(plan, carry):
        calls.append((plan.level, plan.device))
        if plan.level != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory")

    meta = torch.device("meta")  # stands for an accelerator
    assert run_with_recovery(work, 0, 9, device=meta).status == "skipped"
    assert "cpu" not in [level for level, _ in calls]
    calls.clear()
    assert run_with_recovery(work, 0, 9, device=meta, allow_cpu_fallback=True).frames_ok == 10
    assert calls[-1] == ("cpu", CPU) and all(d == meta for level, d in calls[:-1])


def test_host_memory_running_out_on_the_cpu_is_retried_in_chunks():
    def work(plan, carry):
        if plan.frames > 30:
            raise MemoryError("Unable to allocate 7.91 GiB for an array")

    rec = run_with_recovery(work, 0, 59, device=CPU)
    assert [(a.chunk_size, a.outcome) for a in rec.attempts] == [
        (60, "oom"),
        (30, "ok"),
        (30, "ok"),
    ]
    assert rec.attempts[0].error == "Unable to allocate 7.91 GiB for an array"


@pytest.mark.parametrize(
    "error, shown",
    [
        (MemoryError("Unable to allocate 7.91 GiB\nfor an array"), "Unable to allocate 7.91 GiB"),
        (MemoryError(), "MemoryError"),
    ],
)
def test_host_memory_running_out_beside_an_accelerator_names_the_first_line(error, shown):
    from sam2flow.memory.oom import HostOutOfMemory

    def work(plan, carry):
        raise error

    with pytest.raises(HostOutOfMemory) as info:
        run_with_recovery(work, 0, 9, device=torch.device("meta"))
    assert str(info.value) == (
        f"host memory ran out while segmenting on meta ({shown}): "
        "give the job more memory (resources mem_mb)"
    )


def test_an_attempts_time_is_its_own_in_seconds_to_four_places(monkeypatch):
    from sam2flow.memory import recovery

    ticks = iter([100.0, 100.123456])
    monkeypatch.setattr(recovery, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    (attempt,) = run_with_recovery(oom_over(99), 0, 9, device=CPU).attempts
    assert attempt.seconds == 0.1235 and type(attempt.seconds) is float


def test_without_a_monitor_nothing_is_measured(monkeypatch):
    from sam2flow.memory import monitoring

    taken = []
    monkeypatch.setattr(monitoring, "take_snapshot", lambda *a: taken.append(a))
    run_with_recovery(oom_over(30), 0, 59, device=CPU)
    assert taken == []


def test_an_attempt_keeps_what_nvml_saw_at_its_end(monkeypatch):
    from sam2flow.memory import monitoring

    def snapshot(device, stage, cap_bytes=None):
        used = {"end 0-59": 7, "end 0-29": 3, "end 30-59": 4}.get(stage)
        return monitoring.Snapshot(stage=stage, time=0.0, device=str(device), nvml_used=used)

    monkeypatch.setattr(monitoring, "take_snapshot", snapshot)
    rec = run_with_recovery(oom_over(30), 0, 59, device=CPU, monitor=Monitor(CPU))
    assert [a.nvml_used_bytes for a in rec.attempts] == [7, 3, 4]


def cuda_peaks(monkeypatch):
    """torch.cuda's peak counters on a machine without CUDA (stand-ins): each attempt's
    peaks are 10 * n and 10 * n + 1 bytes for the n-th attempt; the devices asked are kept."""
    from sam2flow.memory import devices

    asked, count = [], []
    for name in ("reset_peak", "synchronize", "clear_device_cache"):
        monkeypatch.setattr(devices, name, lambda *a: None)
    monkeypatch.setattr(devices, "device_name", lambda d: "Stand-in GPU")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)

    def allocated(device):
        asked.append(device)
        count.append(1)
        return 10 * len(count)

    monkeypatch.setattr(torch.cuda, "max_memory_allocated", allocated)
    monkeypatch.setattr(
        torch.cuda, "max_memory_reserved", lambda d: asked.append(d) or 10 * len(count) + 1
    )
    return asked


def test_each_cuda_attempt_records_its_own_peaks_and_the_unit_the_largest(monkeypatch):
    asked = cuda_peaks(monkeypatch)
    cuda = torch.device("cuda", 1)
    rec = run_with_recovery(oom_over(30), 0, 59, device=cuda)
    peaks = [(a.peak_allocated_bytes, a.peak_reserved_bytes) for a in rec.attempts]
    assert peaks == [(10, 11), (20, 21), (30, 31)]
    assert rec.peak_allocated_bytes == 30 and rec.gpu_name == "Stand-in GPU"
    assert set(asked) == {cuda}


def test_a_cpu_attempt_has_no_cuda_peaks_even_where_cuda_has_started(monkeypatch):
    asked = cuda_peaks(monkeypatch)
    rec = run_with_recovery(oom_over(30), 0, 59, device=CPU)
    assert [a.peak_allocated_bytes for a in rec.attempts] == [None, None, None]
    assert [a.peak_reserved_bytes for a in rec.attempts] == [None, None, None]
    assert asked == [] and rec.peak_allocated_bytes is None
