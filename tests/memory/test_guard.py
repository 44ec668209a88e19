"""The guard's configuration from config ``memory:`` and reruns, and where a unit's first
chunk size came from (the record's ``sizing``)."""

from __future__ import annotations

import json

import pytest
import torch

from sam2flow.memory import GuardConfig, MemoryGuard
from sam2flow.memory.guard import RECORD_ONLY, mask_settings
from sam2flow.memory.sizing import SizeMemory

CPU = torch.device("cpu")


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
        "file": None, "key": "k", "start_chunk": None, "from": "whole", "warning": None
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


def test_the_sizing_file_sets_the_first_chunk_after_an_oom(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=60")
    guard = MemoryGuard(GuardConfig(sizing_file=tmp_path / "s.json", min_chunk=25), CPU)

    def work(plan, carry):
        from sam2flow.memory.oom import maybe_inject_oom

        maybe_inject_oom(list(range(plan.first_frame, plan.last_frame + 1)))
        return plan.last_frame

    first = guard.run(work, 0, 199, key="k")
    assert first.sizing["from"] == "whole" and first.sizing["file"] == str(tmp_path / "s.json")
    second = guard.run(work, 0, 199, key="k")
    assert second.sizing["from"] == "sizing file" and second.sizing["start_chunk"] == 50
    other = guard.run(work, 0, 199, key="another workload")
    assert other.sizing["from"] == "whole"


def test_a_corrupt_sizing_file_is_ignored_and_written_anew(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{ not json")
    record = MemoryGuard(GuardConfig(sizing_file=path), CPU).run(whole, 0, 99, key="k")
    assert record.status == "ok" and record.sizing["from"] == "whole"
    assert json.loads(path.read_text())["k"]["largest_ok"] == 100


def test_monitoring_snapshots_each_unit_and_off_records_none():
    on = MemoryGuard(GuardConfig(), CPU).run(whole, 0, 9)
    assert on.snapshots and on.snapshots[-1]["stage"] == "after unit"
    assert MemoryGuard(GuardConfig(monitoring=False), CPU).run(whole, 0, 9).snapshots == []


def test_a_unit_without_work_has_a_record_of_its_frames():
    record = MemoryGuard(GuardConfig(), CPU).record_without_work(12)
    assert record.frames_ok == 0 and record.attempts == []
    assert record.to_dict()["frames_total"] == 12 and record.status == "ok"
