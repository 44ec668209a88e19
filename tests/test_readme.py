"""The README can be followed literally: every command in its code blocks runs, in order,
in a copy of the repository, on the shared data (a 60-frame cut of ``m3v1mp4.mp4`` and a
DeepLabCut prediction file for it). Commands that need the internet, a cluster or the
suite itself are skipped, each with its reason; a command that is neither run nor skipped
fails the test, so a new README command cannot go unchecked."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, SCORER, cut_video, dlc_predictions, shared_file

#: Commands (by their start) that are not run here, and why.
SKIPPED = {
    "make test": "the test suite itself: this test runs inside it",
    "python3 -m venv .venv": "a second environment: installing into it needs the package "
    "registry (make install runs the same script, and CI runs make install)",
    "bash envs/install.sh": "installs packages: needs the package registry (CI runs it "
    "through make install)",
    "snakemake --profile profiles/slurm": "needs a SLURM cluster (make test-cluster runs "
    "this profile on a real single-node SLURM)",
}

#: The few words that stand for the reader's own data, and what they become here. Each
#: must occur in the README, so a changed example cannot slip past.
STANDS_FOR = {
    "/data/openfield/": "openfield/",  # the reader's folder of videos
    "--batch-size 400": "--batch-size 30",  # two batches of the 60-frame video, in seconds
    "results/mouse1/masks.h5": "results/m3v1mp4/masks.h5",  # the video init named
    "range(81000, 81030)": "range(30, 60)",  # the last 30 of its 60 frames
}

BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)


def readme_commands(text: str) -> list[tuple[str, str]]:
    """``(language, command)`` for each command of the README's code blocks, in order:
    bash lines with their continuations joined and comments dropped; a python block whole."""
    commands = []
    for language, body in BLOCK.findall(text):
        if language == "python":
            commands.append(("python", body))
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s+)#.*$", "", line).strip()
            if line:
                commands.append(("bash", re.sub(r"\s+", " ", line)))
    return commands


def test_readme_commands_are_parsed_with_continuations_and_without_comments():
    text = "```bash\nmake run    # a comment\n# a line of comment\na \\\n    b  # c\n```\n"
    assert readme_commands(text) == [("bash", "make run"), ("bash", "a b")]


@pytest.fixture
def project(tmp_path):
    """A copy of the repository's tracked files with this suite's .venv, the reader's files
    beside it. The copy's install inputs are made older than the .venv's stamp, so that its
    make sees them installed and never reinstalls the copy into the suite's .venv (MAKEFLAGS
    cannot carry make's ``-o``)."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    if not tracked:
        pytest.skip("not a git clone: the README is tested from a clone")
    path = tmp_path / "sam2flow"
    for name in tracked:
        if name.startswith(("tests/", "docs/", "bench/")) or not (ROOT / name).is_file():
            continue
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, path / name)
    (path / ".venv").symlink_to(ROOT / ".venv")
    stamp = ROOT / ".venv" / ".sam2flow-installed"
    if not stamp.exists():
        pytest.skip("needs the .venv that make install makes (make test does)")
    stamp = stamp.stat().st_mtime
    for name in ("pyproject.toml", "envs/install.sh"):
        os.utime(path / name, (stamp - 1, stamp - 1))
    m3v1 = shared_file("m3v1mp4.mp4")
    (path / "openfield").mkdir()
    cut_video(m3v1, path / "openfield" / "m3v1mp4.mp4", 60)
    dlc_predictions(path / "openfield", "m3v1mp4", 60)
    cut_video(m3v1, path / "mouse.mp4", 60)
    dlc_predictions(path, "mouse", 60)
    (path / f"mouse{SCORER}.csv").rename(path / "mouse_DLC.csv")
    return path


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_every_readme_command_runs(project):
    text = (ROOT / "README.md").read_text()
    for word in STANDS_FOR:
        assert word in text, f"README no longer says {word!r}: update STANDS_FOR"
        text = text.replace(word, STANDS_FOR[word])
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/bin:/bin:/usr/local/bin"  # the reader's shell: .venv not yet active
    ran, skipped = [], []
    for language, command in readme_commands(text):
        reason = next((r for start, r in SKIPPED.items() if command.startswith(start)), None)
        if reason:
            skipped.append(command)
            continue
        argv = (
            [".venv/bin/python", "-c", command]
            if language == "python"
            else ["bash", "-c", f"source .venv/bin/activate && {command}"]
        )
        out = subprocess.run(
            argv, cwd=project, env=env, capture_output=True, text=True, timeout=1200
        )
        assert out.returncode == 0, f"README command failed: {command}\n{out.stderr[-3000:]}"
        ran.append(command)
        if language == "python":
            assert out.stdout.startswith("(30, 1, "), out.stdout  # the 30 frames asked for
    print(f"README: {len(ran)} commands run, {len(skipped)} skipped")
    assert len(skipped) == len(SKIPPED)  # each reason used once: none went stale
    assert (project / "results" / "m3v1mp4" / "masks.h5").is_file()  # init's command ran
    assert (project / "merged" / "masks.h5").is_file()  # and the commands without Snakemake
