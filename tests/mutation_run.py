"""``make mutation``: mutmut over each group of modules, with the tests written for it.

mutmut reads one test selection, and a surviving mutant runs every selected test that
reaches its function. One selection for the whole library makes a mutant of the memory
guard (which every segment test reaches) pay for the real-model tests. So each group runs
in its own workspace, ``.mutation/<group>/`` (a copy of the project whose
``[tool.mutmut]`` names the group's modules and tests), and results are kept there:
a later run tests only what changed.

    python tests/mutation_run.py [--cores N] [--recheck] [group ...]   # then the scores

mutmut keeps a verdict until the mutated function changes, so a test added later does not
reach the survivors it would kill: ``--recheck`` runs every mutant not yet caught again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mutation_scores
import tomllib

ROOT = Path(__file__).resolve().parents[1]
SELECT = ["-m", "not slow and not slurm and not gpu"]
# The alignment oracle over 1,000 random configurations takes 3 minutes, paid again by every
# survivor it reaches; its fixed cases stay.
ALIGNMENT = ["tests/test_alignment.py"] + [
    "--deselect", "tests/test_alignment.py::test_alignment_over_1000_random_configurations"
]  # fmt: skip

#: group: (modules to mutate, tests that run against them). Tests whose work happens in a
#: subprocess are left out: the subprocess imports the unmutated package.
GROUPS = {
    "memory": (
        ["src/sam2flow/memory/*"],
        ["tests/memory"]
        + ["--deselect", "tests/memory/test_real_oom.py"]
        + ["--deselect", "tests/memory/test_sizing.py::test_remembered_size_survives_a_new_process"]
        # 30 s of 1,000 unit lengths, paid again by every survivor it reaches
        + [
            "--deselect",
            "tests/memory/test_recovery.py::"
            "test_no_chunk_is_under_the_floor_for_any_unit_and_failing_size",
        ],
    ),  # fmt: skip
    "prompts": (
        ["src/sam2flow/prompts.py"],
        ["tests/test_prompts.py", "tests/test_prompt_checks.py", "tests/test_dlc.py"],
    ),
    "frames": (
        [
            "src/sam2flow/frame_folders.py",
            "src/sam2flow/decoding.py",
            "src/sam2flow/extract.py",
            "src/sam2flow/restore.py",
            "src/sam2flow/frame_source.py",
        ],
        ["tests/test_frames.py", "tests/test_frame_folders.py", "tests/test_restore.py"]
        + [
            "tests/test_ranges.py",
            "tests/robustness/test_bad_videos.py",
            "tests/test_frame_source.py",
        ]
        + ["--deselect", "tests/test_ranges.py::test_workers_end_when_the_extraction_is_killed"]
        # the command line in a subprocess: 34 s of the clean and the stats runs
        + [
            f"--deselect=tests/test_frame_folders.py::{name}"
            for name in (
                "test_a_folder_named_by_sam2s_readme_command_segments",
                "test_a_folder_starting_later_keeps_global_indices",
                "test_ambiguous_or_unnumbered_frames_are_one_line_errors",
            )
        ]
        # Whole real videos decoded again (35 s of the 50 s every surviving mutant of the
        # extraction paid; then bedroom's 8.5 s of the 22 s left): the synthetic videos stay,
        # those with B-frames and a variable frame rate among them.
        + [
            "--deselect",
            "tests/test_ranges.py::test_m3v1_decodes_in_ranges_byte_for_byte",
            "--deselect",
            "tests/test_ranges.py::test_bedroom_has_one_keyframe_so_one_range",
            "--deselect",
            "tests/test_ranges.py::test_bedroom_split_between_keyframes_still_decodes_byte_for_byte",
            "--deselect",
            "tests/test_restore.py::"
            "test_batches_of_the_shared_videos_come_back_byte_for_byte[bedroom.mp4-0002]",
            "--deselect",
            "tests/test_restore.py::"
            "test_batches_of_the_shared_videos_come_back_byte_for_byte[m3v1mp4.mp4-0004]",
            "--deselect",
            "tests/test_restore.py::"
            "test_one_batch_of_2000_frames_is_decoded_again_alone_after_a_seek",
            "--deselect",
            "tests/robustness/test_bad_videos.py::test_yuv444p_real_video_decodes_every_frame",
        ]
        + ALIGNMENT,
    ),
    "outputs": (
        ["src/sam2flow/outputs.py", "src/sam2flow/overlay.py"],
        ["tests/test_outputs.py", "tests/test_mask_store.py", "tests/test_prompt_checks.py"]
        + ["tests/test_overlay.py"]
        + ALIGNMENT,
    ),
    # What the workflow decides and reports: fast tests, no real model but the checkpoint's.
    "workflow": (
        [
            "src/sam2flow/report.py",
            "src/sam2flow/samplesheet.py",
            "src/sam2flow/plan/carry.py",
            "src/sam2flow/plan/reruns.py",
            "src/sam2flow/plan/schema.py",
            "src/sam2flow/plan/inputs.py",
            "src/sam2flow/models.py",
            "src/sam2flow/identity.py",
        ],
        ["tests/test_report.py", "tests/test_report_parts.py", "tests/test_samplesheet.py"]
        + ["tests/test_sheet_building.py", "tests/test_reruns.py", "tests/test_carry.py"]
        + ["tests/test_models.py", "tests/test_model_options.py", "tests/test_init.py"]
        + ["tests/test_dlc.py", "tests/test_schema.py", "tests/test_identity.py"]
        + ["tests/test_inputs.py"]
        # real videos through the command line in a subprocess: 23 s, and it cannot kill
        + [
            "--deselect",
            "tests/test_init.py::test_init_on_real_videos_then_the_printed_command_runs_to_the_end",
        ],
    ),
    # The worker's side runs in a thread of the test process (tests/test_worker.py's
    # ``serving``); the tests that start a worker process reach the job's side only.
    "worker": (
        ["src/sam2flow/worker.py", "src/sam2flow/plan/grouping.py"],
        ["tests/test_worker.py", "tests/test_grouping.py"],
    ),
    "segment": (
        ["src/sam2flow/segment.py"],
        # The real model on real frames takes minutes per test (test_seams and most of
        # test_segment: about 7 minutes together on both cores, 18 beside a mutation run),
        # paid again by every survivor, and the equivalence oracle more. They stay in make
        # test; here the stand-in predictor (test_segment_parts, the alignment oracle) and
        # the real model's fast cases (a skipped batch, no prompt, a broken chain) run.
        ["tests/test_segment.py", "tests/test_seams.py", "tests/test_record.py"]
        + ["tests/test_segment_parts.py"]
        + [
            "--deselect",
            "tests/test_segment.py::test_every_frame_gets_a_slot_with_global_indices",
            "--deselect",
            "tests/test_segment.py::test_backward_propagation_covers_frames_before_the_prompt",
            "--deselect",
            "tests/test_segment.py::test_chunks_carry_the_exact_mask_over_the_overlap_frame",
            "--deselect",
            "tests/test_segment.py::test_bedroom_frames_with_the_reference_click",
            "--deselect",
            "tests/test_seams.py::test_batch_seam_equals_chunk_seam_bit_for_bit",
            "--deselect",
            "tests/test_seams.py::test_carry_without_the_previous_frame_names_what_is_missing",
            "--deselect",
            "tests/test_seams.py::"
            "test_a_carried_batch_equals_stock_sam2_started_from_the_previous_masks",
        ]
        + ALIGNMENT,
    ),
}


def project_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files: what a clone of this tree would hold."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def mutmut_config(modules: list[str], tests: list[str]) -> str:
    """pyproject's ``[tool.mutmut]`` with the group's modules and tests, as TOML."""
    base = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    config = base | {
        "only_mutate": modules,
        "pytest_add_cli_args_test_selection": SELECT + tests,
    }
    return "[tool.mutmut]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items())


def workspace(group: str) -> Path:
    """``.mutation/<group>/``, brought up to date with the project (unchanged files are
    left alone, so mutmut's cached results of unchanged code stay valid; files the
    project no longer has are removed).

    When the package's code changed (a file changed, added or removed), mutmut's record
    of which tests reach which function is dropped, so that it is made again from every
    test: mutmut itself traces only the tests it has not seen, and so a new function that
    old tests call (a helper split out) was tried against the new tests alone, and its
    mutants survived tests that kill them.
    """
    ws = ROOT / ".mutation" / group
    files = project_files()
    code_changed = False
    for name in files:
        source, copy = ROOT / name, ws / name
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
            code_changed |= name.startswith("src/")
    for gone in {p.relative_to(ws) for p in ws.rglob("*") if p.is_file()} - set(map(Path, files)):
        if gone.parts[0] != "mutants":  # a file the project no longer has (a deleted test)
            (ws / gone).unlink()
            code_changed |= gone.parts[0] == "src"  # a module moved: its callers changed
    if code_changed:
        (ws / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    text = (ROOT / "pyproject.toml").read_text()
    text = text[: text.index("[tool.mutmut]")] + mutmut_config(*GROUPS[group])
    if (ws / "pyproject.toml").read_text() != text:
        (ws / "pyproject.toml").write_text(text)
    return ws


def missed(ws: Path, mutmut: str) -> list[str]:
    """The mutants of workspace ``ws`` that no test has caught yet."""
    found = (mutation_scores.LINE.match(line) for line in mutation_scores.results(ws, mutmut))
    return [m["mutant"] for m in found if m and m["status"].strip() not in mutation_scores.CAUGHT]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("groups", nargs="*", help=f"of {', '.join(GROUPS)} (default: all)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    p.add_argument("--target", type=float, default=85.0)
    p.add_argument("--recheck", action="store_true", help="run the uncaught mutants again")
    args = p.parse_args()
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        p.error(f"unknown groups {sorted(unknown)}: choose from {', '.join(GROUPS)}")
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    env = dict(os.environ, SAM2FLOW_SHARED_DATA=str(ROOT.parent / "shared" / "data"))
    # One thread each: ``--cores`` children side by side, not each of them on every core.
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    dirs = []
    for group in args.groups or GROUPS:
        ws = workspace(group)
        start = time.perf_counter()
        run = [mutmut, "run", "--max-children", str(args.cores)]
        # mutmut's progress, for a run that takes long: .mutation/<group>/mutmut.log
        with open(ws / "mutmut.log", "w") as log:
            subprocess.run(run, cwd=ws, env=env, stdout=log, check=True)
            again = missed(ws, mutmut) if args.recheck else []
            if again:
                subprocess.run(run + again, cwd=ws, env=env, stdout=log, check=True)
        print(f"{group}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        dirs += ["--dir", str(ws)]
    return mutation_scores.main(["--target", str(args.target), *dirs])


if __name__ == "__main__":
    sys.exit(main())
