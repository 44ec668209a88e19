"""Run the real workflow with Snakemake in a scratch project folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

#: Every workflow test: random weights, image size 256, the CPU.
TEST_CONFIG = {
    "model": {"weights": "random", "image_size": 256, "device": "cpu"},
    "resources": {
        "segment_batch": {"gpu": 0, "threads": 1, "mem_mb": 2000, "runtime": 30, "retries": 0}
    },
}


class Project:
    """A scratch folder with config/ and a sample sheet, where Snakemake runs."""

    def __init__(self, path: Path):
        self.path = path
        (path / "config").mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "config" / "config.yaml", path / "config" / "config.yaml")
        self.config = dict(TEST_CONFIG)

    def sheet(self, rows: list[dict]) -> None:
        cols = ["video", "path", "prompts", "points", "box", "mask", "prompt_frame"]
        lines = ["\t".join(cols)] + ["\t".join(str(r.get(c, "")) for c in cols) for r in rows]
        (self.path / "config" / "videos.tsv").write_text("\n".join(lines) + "\n")

    def snakemake(self, *args, env: dict | None = None, check: bool = True):
        (self.path / "test.yaml").write_text(yaml.safe_dump(self.config))
        cmd = [
            SNAKEMAKE,
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(self.path),
            "--configfile",
            str(self.path / "config" / "config.yaml"),
            str(self.path / "test.yaml"),
            "--cores",
            "2",
            *args,
        ]
        run_env = {k: v for k, v in os.environ.items() if k != "SAM2FLOW_INJECT_OOM"}
        run_env.update(env or {})
        run_env["TQDM_DISABLE"] = "1"
        out = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=1800)
        out.log = out.stdout + out.stderr
        if check and out.returncode != 0:
            pytest.fail(f"snakemake failed ({out.returncode}):\n{out.log[-6000:]}")
        return out


def jobs_run(log: str, rule: str) -> list[str]:
    """The wildcards of every job of ``rule`` that Snakemake scheduled, from its own log."""
    found = []
    for block in re.split(r"\n(?=\[|(?:local)?rule |(?:local)?checkpoint )", log):
        if re.match(rf"(local)?(rule|checkpoint) {rule}:", block.strip()):
            match = re.search(r"wildcards: (.*)", block)
            found.append(match.group(1).strip() if match else "")
    return sorted(found)


@pytest.fixture
def project(tmp_path) -> Project:
    return Project(tmp_path / "project")
