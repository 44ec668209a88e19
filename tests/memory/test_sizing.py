"""Adaptive sizing: remembered chunk sizes, shared through a JSON file."""

import subprocess
import sys

import torch

from sam2flow.memory import GuardConfig, MemoryGuard
from sam2flow.memory.recovery import Attempt
from sam2flow.memory.sizing import GROW_AFTER, SizeMemory


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
    from sam2flow.memory.sizing import sizing_key

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
    from sam2flow.memory.sizing import sizing_key

    assert sizing_key("H100", 80, "tiny", 1024, 2, 16) == "H100|80|cap 16|tiny|1024|2"
    assert sizing_key("cpu", None, "tiny", 256, 1) == "cpu|0|cap 0|tiny|256|1"
