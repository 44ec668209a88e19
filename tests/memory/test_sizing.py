"""Adaptive sizing: remembered chunk sizes, shared through a JSON file."""

import json
import subprocess
import sys

import pytest
import torch

from sam2flow.memory import GuardConfig, MemoryGuard
from sam2flow.memory.recovery import Attempt
from sam2flow.memory.sizing import GROW_AFTER, SizeMemory, sizing_key


def attempt(size, outcome, level="chunked"):
    return Attempt(level, size, 0, size - 1, outcome, None, 0.0, None, None, None)


def oom_above(limit):
    def work(plan, carry):
        if plan.frames > limit:
            raise torch.OutOfMemoryError("CUDA out of memory")

    return work


def test_next_unit_starts_at_the_remembered_size(tmp_path):
    guard = MemoryGuard(GuardConfig(sizing_file=tmp_path / "sizes.json"), device="cpu")
    first = guard.run(oom_above(100), 0, 399, key="k")
    assert [a.chunk_size for a in first.attempts[:3]] == [400, 200, 100]
    second = guard.run(oom_above(100), 0, 399, key="k")
    assert second.attempts[0].chunk_size == 100
    assert all(a.outcome == "ok" for a in second.attempts)


def test_remembered_size_survives_a_new_process(tmp_path):
    path = tmp_path / "sizes.json"
    guard = MemoryGuard(GuardConfig(sizing_file=path), device="cpu")
    guard.run(oom_above(100), 0, 399, key="k")
    code = (
        "from sam2flow.memory.sizing import SizeMemory; import sys;"
        "print(SizeMemory(sys.argv[1]).start_size('k', 400))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "100"


def test_a_transient_oom_is_forgotten_after_clean_runs(tmp_path):
    guard = MemoryGuard(GuardConfig(sizing_file=tmp_path / "s.json"), device="cpu")
    sizes = [guard.run(oom_above(100), 0, 399, key="k").attempts[0].chunk_size]
    for _ in range(GROW_AFTER + 1):  # the GPU is free again: nothing fails any more
        sizes.append(guard.run(oom_above(1000), 0, 399, key="k").attempts[0].chunk_size)
    assert sizes == [400] + [100] * GROW_AFTER + [400]
    again = guard.run(oom_above(1000), 0, 399, key="k")
    assert [a.chunk_size for a in again.attempts] == [400] and again.sizing["from"] == "whole"


def test_how_many_clean_runs_is_configurable(tmp_path):
    config = GuardConfig(sizing_file=tmp_path / "s.json", sizing_grow_after=1)
    guard = MemoryGuard(config, device="cpu")
    guard.run(oom_above(100), 0, 399, key="k")
    second = guard.run(oom_above(1000), 0, 399, key="k")
    assert second.attempts[0].chunk_size == 100 and second.sizing["from"] == "sizing file"
    assert guard.run(oom_above(1000), 0, 399, key="k").attempts[0].chunk_size == 400


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


def test_short_units_run_whole(tmp_path):
    mem = SizeMemory(tmp_path / "s.json")
    mem.update("k", [attempt(400, "oom"), attempt(200, "ok")])
    assert mem.start_size("k", 300) is None
    assert mem.start_size("k", 400) == 200


def test_disabled_adaptive_sizing_writes_nothing(tmp_path):
    path = tmp_path / "sizes.json"
    guard = MemoryGuard(GuardConfig(sizing_file=path, adaptive_batch_size=False), device="cpu")
    guard.run(oom_above(100), 0, 399, key="k")
    assert not path.exists()


def test_the_sizing_key_names_every_condition_a_size_holds_for():
    assert sizing_key("H100", 80, "tiny", 1024, 2, 16) == "H100|80|cap 16|tiny|1024|2"
    assert sizing_key("cpu", None, "tiny", 256, 1) == "cpu|0|cap 0|tiny|256|1"


def attempts(*tries):
    """``(level, chunk size, outcome)`` -> the Attempts a unit would record."""
    return [attempt(n, out, lv) for lv, n, out in tries]


def entry(mem):
    return json.loads(mem.path.read_text())["k"]


def test_the_memory_folds_each_units_outcome(tmp_path):
    mem = SizeMemory(tmp_path / "s.json", grow_after=2)
    mem.update("k", attempts(("whole", 400, "ok")))
    assert entry(mem) == {"largest_ok": 400, "successes": 1}
    mem.update("k", attempts(("whole", 400, "ok")))
    assert entry(mem) == {"largest_ok": 400, "successes": 2}
    mem.update("k", attempts(("whole", 500, "oom"), ("chunked", 250, "ok")))
    assert entry(mem) == {"largest_ok": 400, "smallest_failed": 500, "successes": 0}
    mem.update("k", attempts(("chunked", 200, "oom"), ("chunked", 100, "ok")))
    # a failure at or below the largest success: that success no longer holds
    assert entry(mem) == {"smallest_failed": 200, "largest_ok": 100, "successes": 0}
    mem.update("k", attempts(("chunked", 300, "oom"), ("chunked", 100, "ok")))
    assert entry(mem)["smallest_failed"] == 200  # the smallest failure is kept
    mem.update("k", attempts(("chunked", 100, "ok")))
    assert entry(mem) == {"smallest_failed": 200, "largest_ok": 100, "successes": 1}
    mem.update("k", attempts(("whole", 200, "ok")))  # conditions changed: it fits now
    assert entry(mem) == {"largest_ok": 200, "successes": 1}
    assert "\n" in mem.path.read_text()  # people read this file: one field a line


def test_offload_and_cpu_attempts_are_not_sizes_of_this_device(tmp_path):
    mem = SizeMemory(tmp_path / "s.json")
    mem.update("k", attempts(("offload", 25, "ok"), ("cpu", 25, "ok")))
    assert not mem.path.exists()


@pytest.mark.parametrize(
    "stored, frames, start",
    [
        ({}, 400, None),  # nothing known: whole
        ({"smallest_failed": 300}, 299, None),  # a shorter unit than what failed: whole
        ({"smallest_failed": 300}, 300, 150),  # only a failure known: half of it
        ({"smallest_failed": 3}, 400, 1),
        ({"smallest_failed": 1}, 400, 1),  # never under one frame
        ({"smallest_failed": 300, "largest_ok": 120}, 400, 120),
        ({"smallest_failed": 300, "largest_ok": 120, "successes": 1}, 400, 120),
        ({"smallest_failed": 300, "largest_ok": 120, "successes": 2}, 400, None),  # try again
    ],
)
def test_where_a_unit_starts(tmp_path, stored, frames, start):
    (tmp_path / "s.json").write_text(json.dumps({"k": stored, "other": {"largest_ok": 5}}))
    assert SizeMemory(tmp_path / "s.json", grow_after=2).start_size("k", frames) == start


def test_an_unreadable_memory_is_forgotten_not_fatal(tmp_path, caplog):
    (tmp_path / "s.json").write_text("{ not json")
    mem = SizeMemory(tmp_path / "s.json")
    assert mem.entry("k") == {}
    (message,) = [r.getMessage() for r in caplog.records if r.name == "sam2flow.memory.sizing"]
    assert message.startswith(f"ignoring unreadable sizing memory {tmp_path / 's.json'}: ")
    assert message.endswith(
        ": Expecting property name enclosed in double quotes: line 1 column 3 (char 2)"
    )
    mem.update("k", attempts(("whole", 50, "ok")))
    assert entry(mem) == {"largest_ok": 50, "successes": 1}


def test_a_unit_whose_every_attempt_failed_is_remembered(tmp_path):
    mem = SizeMemory(tmp_path / "s.json")
    mem.update("k", attempts(("whole", 400, "oom"), ("chunked", 200, "oom")))
    assert entry(mem) == {"smallest_failed": 200, "successes": 0}
    assert mem.start_size("k", 400) == 100


def test_a_failure_at_exactly_the_largest_success_withdraws_it(tmp_path):
    mem = SizeMemory(tmp_path / "s.json")
    mem.update("k", attempts(("chunked", 100, "ok")))
    mem.update("k", attempts(("chunked", 100, "oom"), ("chunked", 50, "ok")))
    assert entry(mem) == {"smallest_failed": 100, "largest_ok": 50, "successes": 0}


def test_single_frame_sizes_are_remembered(tmp_path):
    mem = SizeMemory(tmp_path / "s.json")
    mem.update("k", attempts(("chunked", 1, "oom")))
    assert entry(mem) == {"smallest_failed": 1, "successes": 0}
    mem.update("k", attempts(("chunked", 2, "oom"), ("chunked", 1, "ok")))
    assert entry(mem) == {"largest_ok": 1, "successes": 0}  # one frame fits after all
