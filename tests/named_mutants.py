"""The faults that issue 18 names, each applied to a copy of the library: the tests that
guard against it must fail. Run by ``make mutation`` after mutmut (whose operators do not
make these two), or alone:

    python tests/named_mutants.py        # exit 1 if any named fault goes unnoticed
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name: (file, text, replacement, tests that must fail)
MUTANTS = {
    "the frame source hands the model frame n-1-i when asked for frame i": (
        "src/sam2flow/frame_source.py",
        "return self._decode(self.paths[index], self.image_size)",
        "return self._decode(self.paths[len(self.paths) - 1 - index], self.image_size)",
        ["tests/test_frames.py", "tests/test_alignment.py", "tests/test_equivalence.py"],
    ),
    "the checkpoint is never loaded into the model": (
        "src/sam2flow/models.py",
        "missing, unexpected = predictor.load_state_dict(state, strict=False)",
        "missing, unexpected = [], []",
        ["tests/test_models.py"],
    ),
}


def caught(file: str, text: str, replacement: str, tests: list[str]) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT / "src", src)
        path = Path(tmp) / file
        code = path.read_text()
        assert code.count(text) == 1, f"{file} no longer holds {text!r}: update MUTANTS"
        path.write_text(code.replace(text, replacement))
        env = dict(os.environ, PYTHONPATH=str(src))
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
            + ["-m", "not slow and not slurm and not gpu", *tests],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        lines = run.stdout.strip().splitlines()
        print(f"    {lines[-1] if lines else run.returncode}")
        return run.returncode == 1


def main() -> int:
    missed = []
    for name, (file, text, replacement, tests) in MUTANTS.items():
        print(f"{name}:")
        if not caught(file, text, replacement, tests):
            missed.append(name)
    print("every named fault fails a test" if not missed else f"NOT CAUGHT: {missed}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
