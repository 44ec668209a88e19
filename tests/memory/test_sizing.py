"""Adaptive sizing: remembered chunk sizes, shared through a JSON file."""

import json
import subprocess
import sys

import pytest
import torch

from sam2flow.memory import GuardConfig, MemoryGuard
from sam2flow.memory.recovery import Attempt
from sam2flow.memory.sizing import SizeMemory, sizing_key
from sam2flow.vocabulary import DEFAULT_GROW_AFTER as GROW_AFTER


def attempt(size, outcome, level="chunked"):
    return Attempt(level, size, 0, size - 1, outcome, None, 0.0, None, None, None)


def oom_above(limit):
    def work(plan, carry):
        if plan.frames > limit:
            raise torch.OutOfMemoryError("CUDA out of memory")

    return work


def test_after_a_whole_failure_the_next_unit_goes_straight_to_the_remembered_size(tmp_path):
    guard = MemoryGuard(GuardConfig(sizing_file=tmp_path / "sizes.json"), device="cpu")
    first = guard.run(oom_above(100), 0, 399, key="k")
    assert [a.chunk_size for a in first.attempts[:3]] == [400, 200, 100]
    second = guard.run(oom_above(100), 0, 399, key="k")
    assert [a.chunk_size for a in second.attempts] == [400, 100, 100, 100, 100]
    assert second.sizing["after_whole"] == 100 and second.sizing["from"] == "whole"


def test_a_unit_that_fits_runs_whole_whatever_the_file_says(tmp_path):
    """The file never changes a batch that fits (a chunk seam would change its masks)."""
    guard = MemoryGuard(GuardConfig(sizing_file=tmp_path / "sizes.json"), device="cpu")
    guard.run(oom_above(100), 0, 399, key="k")
    fits = guard.run(oom_above(1000), 0, 399, key="k")
    assert [(a.level, a.chunk_size, a.outcome) for a in fits.attempts] == [("whole", 400, "ok")]


def test_remembered_size_survives_a_new_process(tmp_path):
    path = tmp_path / "sizes.json"
    guard = MemoryGuard(GuardConfig(sizing_file=path), device="cpu")
    guard.run(oom_above(100), 0, 399, key="k")
    code = (
        "from sam2flow.memory.sizing import SizeMemory; import sys;"
        "print(SizeMemory(sys.argv[1]).size_after_whole_fails('k', 400))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "100"


def test_a_transient_oom_is_forgotten_after_clean_runs(tmp_path):
    path = tmp_path / "s.json"
    guard = MemoryGuard(GuardConfig(sizing_file=path), device="cpu")
    guard.run(oom_above(100), 0, 399, key="k")
    for n in range(1, GROW_AFTER):  # the GPU is free again: nothing fails any more
        guard.run(oom_above(1000), 0, 199, key="k")
        assert json.loads(path.read_text())["k"]["successes"] == n
    guard.run(oom_above(1000), 0, 199, key="k")
    assert "k" not in json.loads(path.read_text())
    again = guard.run(oom_above(100), 0, 399, key="k")  # a new failure halves from scratch
    assert [a.chunk_size for a in again.attempts[:3]] == [400, 200, 100]


def test_how_many_clean_runs_is_configurable(tmp_path):
    config = GuardConfig(sizing_file=tmp_path / "s.json", sizing_grow_after=1)
    guard = MemoryGuard(config, device="cpu")
    guard.run(oom_above(100), 0, 399, key="k")
    guard.run(oom_above(1000), 0, 199, key="k")
    assert guard.sizes.size_after_whole_fails("k", 400) is None


def test_the_memory_cap_is_part_of_the_key():
    assert sizing_key("H100", 80, "tiny", 1024, 1, 16) != sizing_key("H100", 80, "tiny", 1024, 1)


def test_a_sizing_file_that_cannot_be_written_is_a_warning_not_a_lost_batch(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the sizing file's folder should be")
    guard = MemoryGuard(GuardConfig(sizing_file=blocker / "s.json"), device="cpu")
    record = guard.run(oom_above(100), 0, 399, key="k")
    assert record.status == "recovered" and record.frames_ok == 400
    assert "sizing file" in record.sizing["warning"]


def test_a_lock_that_is_never_released_times_out_into_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr("sam2flow.memory.sizing.LOCK_TIMEOUT", 0.2)
    path = tmp_path / "s.json"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from filelock import FileLock;"
            "l = FileLock(sys.argv[1]); l.acquire(); print('held', flush=True); time.sleep(30)",
            str(path) + ".lock",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        guard = MemoryGuard(GuardConfig(sizing_file=path), device="cpu")
        record = guard.run(oom_above(100), 0, 399, key="k")
    finally:
        holder.kill()
    assert record.frames_ok == 400 and "Timeout" in record.sizing["warning"]


def test_a_unit_no_longer_than_the_remembered_size_halves_as_usual(tmp_path):
    mem = SizeMemory(tmp_path / "s.json")
    mem.update("k", [attempt(400, "oom"), attempt(200, "ok")])
    assert mem.size_after_whole_fails("k", 200) is None
    assert mem.size_after_whole_fails("k", 400) == 200


def test_disabled_adaptive_sizing_writes_nothing(tmp_path):
    path = tmp_path / "sizes.json"
    guard = MemoryGuard(GuardConfig(sizing_file=path, adaptive_batch_size=False), device="cpu")
    guard.run(oom_above(100), 0, 399, key="k")
    assert not path.exists()


def test_the_sizing_key_names_every_condition_a_size_holds_for():
    key = sizing_key("H100", 80, "tiny", 1024, 2, 16, "bfloat16", (1080, 1920))
    assert key == "H100|80|cap 16|tiny|1024|2|bfloat16|1080x1920"
    assert sizing_key("cpu", None, "tiny", 256, 1) == "cpu|0|cap 0|tiny|256|1|fp32|0x0"


def attempts(*tries):
    """``(level, chunk size, outcome)`` -> the Attempts a unit would record."""
    return [attempt(n, out, lv) for lv, n, out in tries]


def entry(mem):
    return json.loads(mem.path.read_text())["k"]


def test_the_memory_folds_each_units_outcome(tmp_path):
    mem = SizeMemory(tmp_path / "s.json", grow_after=3)
    mem.update("k", attempts(("whole", 400, "ok")))
    assert not mem.path.exists()  # a clean unit and no history: nothing to remember
    mem.update("k", attempts(("whole", 500, "oom"), ("chunked", 250, "ok")))
    assert entry(mem) == {"largest_ok": 250, "smallest_failed": 500, "successes": 0}
    mem.update("k", attempts(("chunked", 200, "oom"), ("chunked", 100, "ok")))
    # a failure at or below the largest success: that success no longer holds
    assert entry(mem) == {"smallest_failed": 200, "largest_ok": 100, "successes": 0}
    mem.update("k", attempts(("chunked", 300, "oom"), ("chunked", 100, "ok")))
    assert entry(mem)["smallest_failed"] == 200  # the smallest failure is kept
    mem.update("k", attempts(("chunked", 100, "ok")))
    assert entry(mem) == {"smallest_failed": 200, "largest_ok": 100, "successes": 1}
    mem.update("k", attempts(("whole", 200, "ok")))  # conditions changed: it fits now
    assert entry(mem) == {"largest_ok": 200, "successes": 2}
    assert "\n" in mem.path.read_text()  # people read this file: one field a line


def test_only_sizes_chosen_for_memory_are_learnt(tmp_path):
    """A remainder, a resumed or a bisected piece says nothing about what fits."""
    mem = SizeMemory(tmp_path / "s.json")
    piece = attempt(7, "ok")
    piece.sized_for_memory = False
    mem.update("k", [attempt(400, "oom"), attempt(200, "ok"), piece])
    assert entry(mem) == {"smallest_failed": 400, "largest_ok": 200, "successes": 0}
    failed_piece = attempt(3, "oom")
    failed_piece.sized_for_memory = False
    mem.update("k", [failed_piece])
    assert entry(mem) == {"smallest_failed": 400, "largest_ok": 200, "successes": 0}


def test_offload_and_cpu_attempts_are_not_sizes_of_this_device(tmp_path):
    mem = SizeMemory(tmp_path / "s.json")
    mem.update("k", attempts(("offload", 25, "ok"), ("cpu", 25, "ok")))
    assert not mem.path.exists()


@pytest.mark.parametrize(
    "stored, frames, after_whole",
    [
        ({}, 400, None),  # nothing known: halve
        ({"smallest_failed": 300}, 400, None),  # only a failure known: halve
        ({"smallest_failed": 300, "largest_ok": 120}, 400, 120),
        ({"smallest_failed": 300, "largest_ok": 120, "successes": 2}, 400, 120),
        ({"smallest_failed": 300, "largest_ok": 120}, 120, None),  # no shorter: halve
        ({"largest_ok": 1}, 400, 1),
    ],
)
def test_where_a_unit_goes_after_it_failed_whole(tmp_path, stored, frames, after_whole):
    (tmp_path / "s.json").write_text(json.dumps({"k": stored, "other": {"largest_ok": 5}}))
    assert SizeMemory(tmp_path / "s.json").size_after_whole_fails("k", frames) == after_whole


@pytest.mark.parametrize(
    "text, what",
    [
        ("{ not json", "not JSON (Expecting property name enclosed in double quotes: line 1"),
        ("[1, 2]", "not a JSON object; it is written anew"),
        ('{"k": {"largest_ok": "100"}, "j": 3}', "entries ['j', 'k'] are badly shaped"),
        ('{"k": {"largest_ok": -1}}', "entries ['k'] are badly shaped"),
        (b"\xff\xfe{", "not JSON ("),
    ],
)
def test_a_damaged_file_is_repaired_with_a_warning(tmp_path, caplog, text, what):
    path = tmp_path / "s.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    mem = SizeMemory(path)
    assert mem.size_after_whole_fails("k", 400) is None
    (message,) = [r.getMessage() for r in caplog.records if r.name == "sam2flow.memory.sizing"]
    assert message.startswith(f"the sizing file {path} was damaged: {what}")
    assert mem.warnings == [message]
    mem.update("k", attempts(("whole", 400, "oom"), ("chunked", 200, "ok")))
    assert json.loads(path.read_text()) == {
        "k": {"largest_ok": 200, "smallest_failed": 400, "successes": 0}
    }


def test_a_damaged_file_is_named_in_the_units_record_and_written_anew(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{ not json")
    record = MemoryGuard(GuardConfig(sizing_file=path), "cpu").run(oom_above(1000), 0, 99, key="k")
    assert record.status == "ok"
    warning = record.sizing["warning"]
    assert warning.startswith(f"the sizing file {path} was damaged: not JSON")
    assert warning.count("was damaged") == 1  # read before and after the unit: said once
    assert json.loads(path.read_text()) == {}
    again = MemoryGuard(GuardConfig(sizing_file=path), "cpu").run(oom_above(1000), 0, 99, key="k")
    assert again.sizing["warning"] is None


def test_a_unit_whose_every_attempt_failed_is_remembered(tmp_path):
    mem = SizeMemory(tmp_path / "s.json")
    mem.update("k", attempts(("whole", 400, "oom"), ("chunked", 200, "oom")))
    assert entry(mem) == {"smallest_failed": 200, "successes": 0}
    assert mem.size_after_whole_fails("k", 400) is None


def test_a_failure_at_exactly_the_largest_success_withdraws_it(tmp_path):
    mem = SizeMemory(tmp_path / "s.json")
    mem.update("k", attempts(("whole", 200, "oom"), ("chunked", 100, "ok")))
    mem.update("k", attempts(("chunked", 100, "oom"), ("chunked", 50, "ok")))
    assert entry(mem) == {"smallest_failed": 100, "largest_ok": 50, "successes": 0}


def test_single_frame_sizes_are_remembered(tmp_path):
    mem = SizeMemory(tmp_path / "s.json")
    mem.update("k", attempts(("chunked", 1, "oom")))
    assert entry(mem) == {"smallest_failed": 1, "successes": 0}
    mem.update("k", attempts(("chunked", 2, "oom"), ("chunked", 1, "ok")))
    assert entry(mem) == {"largest_ok": 1, "successes": 0}  # one frame fits after all


def test_a_smaller_success_later_keeps_the_largest_known(tmp_path):
    mem = SizeMemory(tmp_path / "s.json", grow_after=5)
    mem.update("k", attempts(("whole", 400, "oom"), ("chunked", 200, "ok")))
    mem.update("k", attempts(("chunked", 100, "ok")))  # a rerun that started smaller
    assert entry(mem) == {"smallest_failed": 400, "largest_ok": 200, "successes": 1}


def test_an_entry_written_without_a_count_of_clean_runs_starts_counting_at_one(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"k": {"largest_ok": 200}}))
    mem = SizeMemory(tmp_path / "s.json", grow_after=5)
    mem.update("k", attempts(("whole", 100, "ok")))
    assert entry(mem) == {"largest_ok": 200, "successes": 1} and mem.warnings == []


def test_a_unit_that_failed_only_where_sizes_are_not_learnt_leaves_nothing(tmp_path):
    """Out of memory only at the offload level: no size to remember, and no count of clean
    runs without one."""
    mem = SizeMemory(tmp_path / "s.json")
    mem.update("k", attempts(("offload", 25, "oom"), ("offload", 25, "ok")))
    assert json.loads(mem.path.read_text()) == {}


def test_each_damage_a_unit_met_is_named_in_its_record(tmp_path):
    """Read before the unit and again after it: damaged in two ways (another job wrote it
    meanwhile), the record names both."""
    path = tmp_path / "s.json"
    path.write_text('{"j": 3}')

    def work(plan, carry):
        path.write_text("[1]")

    record = MemoryGuard(GuardConfig(sizing_file=path), "cpu").run(work, 0, 9, key="k")
    assert record.sizing["warning"] == (
        f"the sizing file {path} was damaged: entries ['j'] are badly shaped; they are dropped; "
        f"the sizing file {path} was damaged: not a JSON object; it is written anew"
    )
