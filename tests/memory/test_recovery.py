"""Graduated recovery, through run_with_recovery and its records."""

import gc
import weakref

import pytest
import torch

from sam2flow.memory import GuardConfig, MemoryGuard, run_with_recovery
from sam2flow.memory.recovery import next_chunk_size

from conftest import listed_in_troubleshooting

CPU = torch.device("cpu")


def oom_above(limit, calls=None):
    """Work that runs out of memory (a real torch.OutOfMemoryError) above ``limit`` frames."""

    def work(plan, carry):
        if calls is not None:
            calls.append((plan.level, plan.first_frame, plan.last_frame, plan.offload, carry))
        if plan.frames > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return plan.last_frame

    return work


def test_halving_sequence_down_to_the_floor():
    assert [next_chunk_size(s) for s in (400, 200, 100, 50)] == [200, 100, 50, 25]
    rec = run_with_recovery(oom_above(30), 0, 399, device=CPU)
    sizes = [a.chunk_size for a in rec.attempts[:5]]
    assert sizes == [400, 200, 100, 50, 25]
    assert rec.status == "recovered" and rec.frames_ok == 400


def test_chunk_floor_is_25_frames():
    rec = run_with_recovery(oom_above(10), 0, 99, device=CPU)
    assert min(a.chunk_size for a in rec.attempts) == 25
    assert next_chunk_size(30) == 25 and next_chunk_size(25) is None


def test_the_last_chunk_is_never_a_runt():
    rec = run_with_recovery(oom_above(26), 0, 50, device=CPU)  # 51 frames
    assert [(a.chunk_size, a.outcome) for a in rec.attempts] == [
        (51, "oom"),
        (26, "ok"),
        (25, "ok"),
    ]


@pytest.mark.parametrize("min_chunk", [1, 7, 25])
def test_no_chunk_is_under_the_floor_for_any_unit_and_failing_size(min_chunk, monkeypatch):
    """Unit lengths 1-1000 x every size above which the work runs out of memory."""
    # The cleanup after an OOM (a full gc.collect, ~0.15 s) is not what is tested here.
    monkeypatch.setattr("sam2flow.memory.devices.clear_device_cache", lambda device: None)
    cases = 0
    for total in range(1, 1001):
        floor = min(min_chunk, total)
        for limit in sorted({1, floor - 1, floor, floor + 1, total // 3, total // 2, total}):
            sizes = []

            def work(plan, carry, limit=limit, sizes=sizes):
                sizes.append(plan.frames)
                if plan.frames > limit:
                    raise torch.OutOfMemoryError("CUDA out of memory")

            rec = run_with_recovery(work, 0, total - 1, device=CPU, min_chunk=min_chunk)
            assert min(sizes) >= floor, (total, limit, sizes)
            assert rec.frames_ok + rec.frames_skipped == total
            assert rec.frames_ok == sum(s for s in sizes if s <= limit)
            if limit >= 2 * floor - 1:  # a split with every part in floor..limit exists
                assert rec.status != "skipped", (total, limit, sizes)
            cases += 1
    assert cases > 3000


def test_remainder_smaller_than_floor_runs_whole():
    rec = run_with_recovery(oom_above(30), 0, 59, device=CPU)
    assert [(a.first_frame, a.last_frame, a.outcome) for a in rec.attempts] == [
        (0, 59, "oom"),
        (0, 29, "ok"),
        (30, 59, "ok"),
    ]


def test_only_the_failed_chunk_is_split_again():
    calls = []

    # 100 frames: 50 fails only for the second half (frames 50-99 "heavier").
    def work(plan, carry):
        calls.append((plan.first_frame, plan.last_frame))
        if plan.frames > 50 or (plan.first_frame >= 50 and plan.frames > 25):
            raise torch.OutOfMemoryError("out of memory")

    rec = run_with_recovery(work, 0, 99, device=CPU)
    assert calls == [(0, 99), (0, 49), (50, 99), (50, 74), (75, 99)]
    assert rec.status == "recovered"


def test_skip_after_the_floor_fails_is_recorded():
    rec = run_with_recovery(oom_above(5), 0, 99, device=CPU)
    assert rec.status == "skipped"
    assert rec.frames_ok == 0 and rec.frames_skipped == 100
    # The floor chunk that failed, then what has no mask to continue from.
    assert rec.skipped_ranges == [(0, 24), (25, 99)]
    assert "out of memory at every level down to 25" in rec.skip_reasons[0]
    assert "no mask to continue from: frames 0-24" in rec.skip_reasons[1]
    assert rec.skip_reason == rec.skip_reasons[0]
    assert [a.level for a in rec.attempts] == ["whole", "chunked", "chunked", "offload"]


def test_finished_chunks_keep_their_frames_when_the_rest_is_skipped():
    def work(plan, carry):
        if plan.first_frame >= 25 or plan.frames > 25:
            raise torch.OutOfMemoryError("out of memory")

    rec = run_with_recovery(work, 0, 74, device=CPU)
    assert rec.status == "skipped"
    assert rec.frames_ok == 25 and rec.skipped_ranges == [(25, 49), (50, 74)]


def test_non_oom_errors_propagate_unchanged():
    error = RuntimeError("CUDA error: an illegal memory access was encountered")

    def work(plan, carry):
        raise error

    with pytest.raises(RuntimeError) as info:
        run_with_recovery(work, 0, 59, device=CPU)
    assert info.value is error


def test_a_real_error_while_an_oom_is_handled_fails_with_its_own_text():
    attempts = []

    def work(plan, carry):
        attempts.append(plan.frames)
        try:
            raise torch.OutOfMemoryError("CUDA out of memory")
        except torch.OutOfMemoryError:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")  # noqa: B904

    with pytest.raises(RuntimeError, match="illegal memory access"):
        run_with_recovery(work, 0, 59, device=CPU)
    assert attempts == [60], "a broken CUDA context must not be retried"


def test_host_memory_running_out_beside_an_accelerator_fails_the_job():
    from sam2flow.errors import HOST_OOM_EXIT
    from sam2flow.logs import run_script
    from sam2flow.memory.oom import HostOutOfMemory

    def work(plan, carry):
        raise MemoryError("Unable to allocate 7.91 GiB for an array")

    accelerator = torch.device("meta")  # not the CPU: chunks on it cannot free host memory
    with pytest.raises(HostOutOfMemory, match="mem_mb") as info:
        run_with_recovery(work, 0, 59, device=accelerator)
    listed_in_troubleshooting(str(info.value))
    with pytest.raises(SystemExit) as stop:
        run_script(None, lambda: run_with_recovery(work, 0, 59, device=accelerator))
    assert stop.value.code == HOST_OOM_EXIT == 3


def test_failed_attempts_tensors_are_freed_before_the_retry():
    refs = []
    alive_at_retry = []

    def work(plan, carry):
        if refs:
            alive_at_retry.append(refs[0]() is not None)
        big = torch.ones(1000, 1000)
        refs.append(weakref.ref(big))
        if plan.frames > 30:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return None

    gc.disable()  # freed by the traceback going away, not by a collection
    try:
        run_with_recovery(work, 0, 59, device=CPU)
    finally:
        gc.enable()
    assert alive_at_retry and alive_at_retry[0] is False


def test_carry_goes_from_each_chunk_to_the_next():
    calls = []
    run_with_recovery(oom_above(30, calls), 0, 59, device=CPU, carry="start")
    carries = [c[4] for c in calls]
    assert carries == ["start", "start", 29]


def test_offload_level_follows_the_floor_and_force_starts_there():
    calls = []
    run_with_recovery(oom_above(5, calls), 0, 99, device=CPU)
    assert [c[3] for c in calls] == [False, False, False, True]
    calls.clear()
    run_with_recovery(oom_above(100, calls), 0, 59, device=CPU, force_cpu_offload=True)
    assert [(c[0], c[3]) for c in calls] == [("offload", True)]


def test_cpu_fallback_only_where_allowed():
    calls = []
    meta = torch.device("meta")  # stands for an accelerator: CPU fallback is a new level
    run_with_recovery(oom_above(5, calls), 0, 59, device=meta, allow_cpu_fallback=False)
    assert "cpu" not in [c[0] for c in calls]
    calls.clear()
    run_with_recovery(oom_above(5, calls), 0, 59, device=meta, allow_cpu_fallback=True)
    assert [c[0] for c in calls][-1] == "cpu"


def test_injected_oom_hook_raises_before_the_work(monkeypatch):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=30")
    calls = []
    rec = run_with_recovery(oom_above(1000, calls), 0, 59, device=CPU)
    assert [a.outcome for a in rec.attempts] == ["oom", "ok", "ok"]
    assert "SAM2FLOW_INJECT_OOM" in rec.attempts[0].error
    assert len(calls) == 2  # the work never saw the 60-frame attempt


def test_record_is_json_ready_with_the_documented_fields():
    import json

    guard = MemoryGuard(GuardConfig(), device="cpu")
    rec = guard.run(oom_above(30), 0, 59).to_dict()
    json.dumps(rec)
    for key in (
        "status frames_total frames_ok frames_skipped device gpu_name memory_cap_bytes "
        "status_level peak_allocated_bytes attempts"
    ).split():
        assert key in rec
    for key in (
        "level chunk_size first_frame last_frame outcome error seconds "
        "peak_allocated_bytes peak_reserved_bytes nvml_used_bytes"
    ).split():
        assert key in rec["attempts"][0]
    assert rec["snapshots"], "monitoring is on by default"


def test_monitoring_can_be_turned_off():
    guard = MemoryGuard(GuardConfig(monitoring=False), device="cpu")
    assert guard.run(oom_above(100), 0, 9).snapshots == []


def oom_on(bad: range, calls: list):
    """Work that runs out of memory at every level on any chunk touching ``bad``."""

    def work(plan, carry):
        calls.append((plan.first_frame, plan.last_frame, carry))
        if set(range(plan.first_frame, plan.last_frame + 1)) & set(bad):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return plan.last_frame

    return work


def test_a_skip_takes_only_what_cannot_be_reached_from_an_anchor(monkeypatch):
    """Anchors every 10 frames; frames 120-145 fail at every level: 120-149 are skipped
    (up to the next anchor), 0-119 and 150-399 run."""
    monkeypatch.setattr("sam2flow.memory.devices.clear_device_cache", lambda device: None)
    calls = []
    rec = run_with_recovery(
        oom_on(range(120, 146), calls), 0, 399, device=CPU, anchors=range(0, 400, 10)
    )
    assert rec.status == "skipped"
    assert rec.skipped_ranges == [(120, 129), (130, 139), (140, 149)]
    assert rec.frames_skipped == 30 and rec.frames_ok == 370
    assert all("out of memory at every level" in why for why in rec.skip_reasons)
    done = [(a.first_frame, a.last_frame) for a in rec.attempts if a.outcome == "ok"]
    covered = sorted(f for a, b in done for f in range(a, b + 1))
    assert covered == [f for f in range(400) if not 120 <= f <= 149]
    # After a skip the work starts again on an anchor, with no carry.
    restarts = [(a, carry) for a, _, carry in calls if a in (130, 140, 150)]
    assert restarts and all(carry is None for _, carry in restarts)
    assert {a for a, _ in restarts} == {130, 140, 150}


def test_without_anchors_a_skip_runs_to_the_end_of_the_unit(monkeypatch):
    monkeypatch.setattr("sam2flow.memory.devices.clear_device_cache", lambda device: None)
    rec = run_with_recovery(oom_on(range(120, 146), []), 0, 399, device=CPU)
    first_skipped = rec.skipped_ranges[0][0]
    assert rec.skipped_ranges[-1][1] == 399 and 100 <= first_skipped <= 120
    assert rec.frames_ok == first_skipped


class Tracker:
    """Work that goes through its positions one at a time and says how far it got
    (``progress``); ``fails(position, level)`` says where it runs out of memory."""

    def __init__(self, fails):
        self.fails, self.computed, self.plan, self.done = fails, [], None, -1

    def __call__(self, plan, carry):
        self.plan, self.done = plan, plan.first_frame - 1
        for p in range(plan.first_frame, plan.last_frame + 1):
            if self.fails(p, plan.level):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            self.computed.append(p)
            self.done = p
        return ("mask of", plan.last_frame)

    def progress(self, plan):
        if plan is not self.plan:
            return None
        return self.done, ("mask of", self.done) if self.done >= plan.first_frame else None


def test_a_failure_mid_chunk_keeps_the_frames_before_it_and_goes_on_from_them():
    once = {45}
    work = Tracker(lambda p, level: p in once and not once.discard(p))
    rec = run_with_recovery(work, 0, 59, device=CPU, progress=work.progress)
    assert sorted(work.computed) == list(range(60)), "no frame is computed twice"
    assert [(a.first_frame, a.last_frame, a.outcome, a.frames_done) for a in rec.attempts] == [
        (0, 59, "oom", 45),
        (45, 59, "ok", 15),
    ]
    assert rec.status == "recovered" and rec.frames_ok == 60


def test_after_a_resume_the_carry_is_the_last_finished_frames():
    seen = []
    once = {30}
    work = Tracker(lambda p, level: p in once and not once.discard(p))

    def recording(plan, carry):
        seen.append(carry)
        return work(plan, carry)

    run_with_recovery(recording, 0, 59, device=CPU, carry="prompt", progress=work.progress)
    assert seen == ["prompt", ("mask of", 29)]


def test_failures_at_45_to_47_with_a_prompt_every_10th_frame_skip_exactly_45_to_49():
    work = Tracker(lambda p, level: 45 <= p <= 47)
    rec = run_with_recovery(
        work, 0, 59, device=CPU, anchors=range(0, 60, 10), progress=work.progress
    )
    skipped = [f for lo, hi in rec.skipped_ranges for f in range(lo, hi + 1)]
    assert skipped == [45, 46, 47, 48, 49]
    assert sorted(work.computed) == [*range(45), *range(50, 60)]
    assert rec.skip_reasons[0] == (
        "out of memory at every level: CUDA out of memory. Tried to allocate 2.00 GiB"
    )


@pytest.mark.parametrize("reports_progress", [True, False])
def test_a_batch_prompted_on_every_frame_that_fails_everywhere_stops_at_the_cap(
    reports_progress, monkeypatch
):
    """Was 1,595 attempts for 60 frames: now at most 3 x log2(60) = 18."""
    monkeypatch.setattr("sam2flow.memory.devices.clear_device_cache", lambda device: None)
    work = Tracker(lambda p, level: True)
    rec = run_with_recovery(
        work,
        0,
        59,
        device=CPU,
        anchors=range(60),
        progress=work.progress if reports_progress else None,
    )
    assert len(rec.attempts) <= 18 == rec.failure_cap
    assert rec.status == "skipped" and rec.frames_skipped == 60
    assert rec.skip_reasons[-1].startswith("gave up after 18 out-of-memory errors (at most 18")
    listed_in_troubleshooting(rec.skip_reasons[-1])


def test_where_the_memory_was_there_the_same_attempt_is_tried_once_more():
    fragmented = (
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 15.77 "
        "GiB of which 1.06 GiB is free. Of the allocated memory 10.00 GiB is allocated by "
        "PyTorch, and 3.00 GiB is reserved by PyTorch but unallocated."
    )
    tries = []

    def work(plan, carry):
        tries.append(plan.frames)
        if len(tries) < 3:
            raise torch.OutOfMemoryError(fragmented)

    rec = run_with_recovery(work, 0, 59, device=CPU)
    # Once at the same size; then, as the figures did not change, halving.
    assert tries == [60, 60, 30, 30]
    assert [a.memory_was_there for a in rec.attempts] == [True, True, False, False]


def test_host_memory_running_out_during_the_cpu_fallback_fails_the_job():
    from sam2flow.memory.oom import HostOutOfMemory

    def work(plan, carry):
        if plan.level == "cpu":
            raise MemoryError("Unable to allocate 7.91 GiB for an array")
        raise torch.OutOfMemoryError("CUDA out of memory")

    accelerator = torch.device("meta")
    with pytest.raises(HostOutOfMemory, match="mem_mb"):
        run_with_recovery(work, 0, 9, device=accelerator, allow_cpu_fallback=True)


def test_a_failing_piece_is_bisected_at_the_anchor_nearest_its_middle():
    """Frames 100-104 fail at every level; anchors at 105, 114 and 125 of 100-129: the
    piece is cut at 114 (the middle is 115), then at 105, and only 100-104 are skipped."""
    calls = []

    def work(plan, carry):
        calls.append((plan.first_frame, plan.last_frame, plan.offload))
        if plan.first_frame < 105:
            raise torch.OutOfMemoryError("CUDA out of memory")

    rec = run_with_recovery(work, 100, 129, device=CPU, anchors=[105, 114, 125])
    assert calls == [
        (100, 129, False),
        (100, 129, True),
        (100, 113, True),
        (100, 104, True),
        (105, 129, False),  # from the first level again
    ]
    assert rec.skipped_ranges == [(100, 104)] and rec.frames_ok == 25
    # Only the unit's whole and its ladder's sizes say what fits: not the pieces, nor a rest.
    assert [a.sized_for_memory for a in rec.attempts] == [True, True, False, False, False]


def test_frames_between_a_skipped_frame_and_the_next_anchor_are_skipped_too():
    work = Tracker(lambda p, level: p == 45)
    rec = run_with_recovery(work, 0, 59, device=CPU, anchors=[0, 47], progress=work.progress)
    assert rec.skipped_ranges == [(45, 45), (46, 46)]
    assert rec.frames_ok == 58 and rec.frames_skipped == 2
    assert "no mask to continue from: frames 45-45" in rec.skip_reasons[1]


def test_after_a_skipped_frame_work_starts_again_at_the_first_level():
    work = Tracker(lambda p, level: p == 45)
    rec = run_with_recovery(work, 0, 59, device=CPU, anchors=[0, 46], progress=work.progress)
    assert [(a.level, a.first_frame, a.outcome) for a in rec.attempts] == [
        ("whole", 0, "oom"),  # frames 0-44 kept
        ("chunked", 45, "oom"),
        ("offload", 45, "oom"),  # frame 45 skipped
        ("chunked", 46, "ok"),
    ]


def test_a_unit_that_does_not_start_at_0_keeps_the_frames_it_finished(caplog):
    caplog.set_level("INFO", logger="sam2flow.memory.recovery")
    once = {101, 145}
    work = Tracker(lambda p, level: p in once and not once.discard(p))
    rec = run_with_recovery(work, 100, 159, device=CPU, progress=work.progress)
    assert [(a.first_frame, a.outcome, a.frames_done) for a in rec.attempts] == [
        (100, "oom", 1),  # one frame finished: kept
        (101, "oom", 44),
        (145, "ok", 15),
    ]
    assert sorted(work.computed) == list(range(100, 160))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1] == (
        "frames 101-159 (59, level chunked): oom (CUDA out of memory. Tried to allocate "
        "2.00 GiB), 44 frames kept"
    )


def test_giving_up_at_the_cap_names_the_last_error_and_logs_what_it_skips(caplog):
    caplog.set_level("INFO", logger="sam2flow.memory.recovery")

    def work(plan, carry):
        raise torch.OutOfMemoryError(f"CUDA out of memory at {plan.first_frame}-{plan.last_frame}")

    rec = run_with_recovery(work, 0, 59, device=CPU, anchors=range(60))
    last = rec.attempts[-1]
    assert rec.skip_reasons[-1] == (
        f"gave up after 18 out-of-memory errors (at most 18 for 60 frames); the last: "
        f"CUDA out of memory at {last.first_frame}-{last.last_frame}"
    )
    lo, hi = rec.skipped_ranges[-1]
    assert lo == last.first_frame and hi == 59
    assert caplog.records[-1].getMessage() == f"skipping frames {lo}-59: {rec.skip_reasons[-1]}"


def test_the_sizing_files_chunk_after_a_whole_failure_is_taken_only_when_shorter():
    rec = run_with_recovery(oom_above(50), 0, 99, device=CPU, after_whole=100)
    assert [a.chunk_size for a in rec.attempts] == [100, 50, 50]  # 100 again: no help
    rec = run_with_recovery(oom_above(50), 0, 99, device=CPU, after_whole=40)
    assert [a.chunk_size for a in rec.attempts] == [100, 34, 40, 26]  # 40s, and no runt


def test_an_injected_oom_at_a_frame_is_met_where_the_work_reaches_that_frame(monkeypatch):
    """Work that reports its progress meets ``frames=`` itself, frame by frame: the frames
    before it are kept. Work that does not is failed by any attempt including the frame."""
    from sam2flow.memory.oom import maybe_inject_oom_at

    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "frames=45-45")
    once = {45}

    def meets(p, level):
        if p in once:
            once.discard(p)
            maybe_inject_oom_at(p)
        return False

    work = Tracker(meets)
    rec = run_with_recovery(work, 0, 59, device=CPU, progress=work.progress)
    assert [(a.first_frame, a.outcome, a.frames_done) for a in rec.attempts] == [
        (0, "oom", 45),
        (45, "ok", 15),
    ]
    assert "at frame 45" in rec.attempts[0].error
    plain = run_with_recovery(oom_above(1000), 0, 59, device=CPU, anchors=[46])
    assert "including frame 45" in plain.attempts[0].error
    assert plain.skipped_ranges == [(30, 45)]  # 0-29 ran: halving


@pytest.mark.parametrize("frames, levels, cap", [(1, 1, 4), (2, 1, 4), (1, 2, 6), (60, 2, 18),
                                                 (400, 3, 26), (1024, 3, 30)])  # fmt: skip
def test_the_failure_cap_is_3_log2_frames_and_at_least_two_rounds_of_levels(frames, levels, cap):
    from sam2flow.memory.recovery import failure_cap

    assert failure_cap(frames, levels) == cap


def test_the_guard_keeps_a_units_attempts_when_an_error_that_is_no_oom_ends_it():
    """The batch's crash record lists the out-of-memory errors met before the bug."""
    tries = []

    def work(plan, carry):
        tries.append(plan.frames)
        if len(tries) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        raise RuntimeError("a bug")

    guard = MemoryGuard(GuardConfig(monitoring=False), CPU)
    with pytest.raises(RuntimeError, match="a bug"):
        guard.run(work, 0, 59)
    assert [(a.chunk_size, a.outcome) for a in guard.attempts] == [(60, "oom")]


def test_the_guard_hands_the_works_progress_to_recovery():
    once = {45}
    work = Tracker(lambda p, level: p in once and not once.discard(p))
    guard = MemoryGuard(GuardConfig(monitoring=False), CPU)
    rec = guard.run(work, 0, 59, progress=work.progress)
    assert [(a.first_frame, a.frames_done) for a in rec.attempts] == [(0, 45), (45, 15)]
