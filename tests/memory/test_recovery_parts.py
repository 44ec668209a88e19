"""The parts of graduated recovery one at a time: sizes, levels, frame ranges, one attempt's
record and a unit's record, each through its exact result."""

from __future__ import annotations

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
