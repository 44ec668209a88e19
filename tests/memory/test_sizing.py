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


def test_grows_back_after_successes_but_never_to_a_failed_size(tmp_path):
    mem = SizeMemory(tmp_path / "s.json")
    mem.update("k", [attempt(400, "oom"), attempt(200, "oom"), attempt(100, "ok")])
    assert mem.start_size("k", 400) == 100
    for _ in range(GROW_AFTER):
        mem.update("k", [attempt(100, "ok")])
    assert mem.start_size("k", 400) == 199  # doubled, but below the known failure (200)


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
