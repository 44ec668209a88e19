"""The suite's own harness for mutation runs (``tests/conftest.py``): what it does to a
mutant's pytest run, checked on a small project that copies the conftest."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")


SPIN = "end = time.process_time() + {}\n    while time.process_time() < end:\n        pass"


def run_under(tmp_path: Path, mutant: str | None, body: str) -> subprocess.CompletedProcess:
    """pytest on one test, ``body``, recorded by mutmut at 0.01 s, under ``mutant``
    (``None``: no mutmut at all)."""
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_one.py").write_text(f"import time\n\ndef test_one():\n    {body}\n")
    stats = {"duration_by_test": {"test_one.py::test_one": 0.01}}
    (tmp_path / "mutmut-stats.json").write_text(json.dumps(stats))
    env = {k: v for k, v in os.environ.items() if k != "MUTANT_UNDER_TEST"}
    if mutant is not None:
        env["MUTANT_UNDER_TEST"] = mutant
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir=."]
        + ["-o", "addopts=", "test_one.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


MUTANT = "sam2flow.decoding.x_write_jpeg__mutmut_3"


def test_a_mutant_that_makes_a_test_spin_fails_it_at_five_times_its_clean_time(tmp_path):
    out = run_under(tmp_path, MUTANT, SPIN.format(60))
    assert out.returncode == 1, out.stdout
    assert "hung: 1.1 s of CPU and still running (5x its clean time + 1 s)" in out.stdout


def test_a_test_that_waits_is_not_taken_for_hung(tmp_path):
    """Waiting (for a core, a file, a child) is not spinning: only CPU time counts."""
    assert run_under(tmp_path, MUTANT, "time.sleep(2)").returncode == 0


@pytest.mark.parametrize("mutant", [None, "stats", ""])
def test_without_a_mutant_a_test_takes_the_time_it_needs(tmp_path, mutant):
    out = run_under(tmp_path, mutant, SPIN.format(1.5))
    assert out.returncode == 0, out.stdout


def test_what_collection_imported_is_left_out_of_garbage_collection():
    assert gc.get_freeze_count() > 0


def traced_workspace(tmp_path, monkeypatch, files: dict[str, str]) -> Path:
    """A project of ``files`` in ``tmp_path``, its group "g" (module ``src/m.py``) put in a
    workspace that holds mutmut's record of which tests reach what; returns that record."""
    import mutation_run

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / ".gitignore").write_text(".mutation/\n")
    (tmp_path / "pyproject.toml").write_text("[tool.mutmut]\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.setattr(mutation_run, "ROOT", tmp_path)
    monkeypatch.setitem(mutation_run.GROUPS, "g", (["src/m.py"], ["tests"]))
    stats = mutation_run.workspace("g") / "mutants" / "mutmut-stats.json"
    stats.parent.mkdir()
    stats.write_text("{}")
    return stats


def test_a_change_to_the_code_makes_mutmut_trace_every_test_again(tmp_path, monkeypatch):
    """mutmut traces only tests it has not seen: a new helper that old tests call would be
    tried against the new tests alone. The workspace drops its record when code changes."""
    import mutation_run

    files = {"src/m.py": "x = 1\n", "tests/test_m.py": "def test_m(): pass\n"}
    stats = traced_workspace(tmp_path, monkeypatch, files)
    (tmp_path / "tests" / "test_m.py").write_text("def test_m(): assert True\n")
    mutation_run.workspace("g")
    assert stats.exists()  # new tests are traced by mutmut itself
    (tmp_path / "src" / "m.py").write_text("x = 2\n")
    assert (mutation_run.workspace("g") / "src" / "m.py").read_text() == "x = 2\n"
    assert not stats.exists()


def test_a_module_removed_from_the_code_makes_mutmut_trace_every_test_again(tmp_path, monkeypatch):
    """Its functions moved elsewhere, where old tests call them."""
    import mutation_run

    files = {"src/m.py": "x = 1\n", "src/n.py": "y = 1\n", "tests/t.py": ""}
    stats = traced_workspace(tmp_path, monkeypatch, files)
    (tmp_path / "tests" / "t.py").unlink()
    assert not (mutation_run.workspace("g") / "tests" / "t.py").exists()
    assert stats.exists()  # a test removed: the rest stay traced
    (tmp_path / "src" / "n.py").unlink()
    assert not (mutation_run.workspace("g") / "src" / "n.py").exists()
    assert not stats.exists()
