"""Frame folders the way users have them: SAM 2's own naming, and names that cannot work."""

import argparse
import shutil
import subprocess

import numpy as np
import pytest

from sam2flow.cli import build_parser
from sam2flow.outputs import load_masks

from conftest import sam2flow, shared_file

FAST = ["--weights", "random", "--image-size", 256, "--device", "cpu"]
FAST += ["--disable-adaptive-batch-size", "--disable-memory-monitoring"]


def sam2_readme_frames(folder, frames=12):
    """SAM 2's README command: ffmpeg ... -q:v 2 -start_number 0 DIR/%05d.jpg."""
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    video = shared_file("bedroom.mp4")
    folder.mkdir()
    cmd = ["ffmpeg", "-v", "error", "-i", video, "-frames:v", str(frames), "-q:v", "2"]
    subprocess.run([*cmd, "-start_number", "0", f"{folder}/%05d.jpg"], check=True)
    return folder


def test_a_folder_named_by_sam2s_readme_command_segments(tmp_path):
    frames = sam2_readme_frames(tmp_path / "frames")
    out = sam2flow(
        "segment", "--frames", frames, "--out", tmp_path / "o", "--point", "210,350", *FAST
    )
    assert "batch ok: 12 frames" in out.stdout
    index, _, masks = load_masks(tmp_path / "o" / "masks.npz")
    assert index.tolist() == list(range(12)) and masks.shape[2:] == (540, 960)


def test_a_folder_starting_later_keeps_global_indices(tmp_path):
    frames = sam2_readme_frames(tmp_path / "frames")
    for jpg in sorted(frames.glob("*.jpg")):  # 00000..00011 -> 00100..00111, .JPEG
        jpg.rename(frames / f"{int(jpg.stem) + 100:05d}.JPEG")
    args = ["--point", "210,350", "--prompt-frame", 105]
    sam2flow("segment", "--frames", frames, "--out", tmp_path / "o", *args, *FAST)
    index, _, masks = load_masks(tmp_path / "o" / "masks.npz")
    assert index.tolist() == list(range(100, 112)) and masks[5].any()


@pytest.mark.parametrize(
    "names, named",
    [
        (["00001.jpg", "0000001.jpg"], ["00001.jpg", "0000001.jpg"]),
        (["00000.jpg", "frame_a.jpg"], ["frame_a.jpg"]),
        (["00000.jpg", "00001.jpeg", "1.JPG"], ["00001.jpeg", "1.JPG"]),
    ],
)
def test_ambiguous_or_unnumbered_frames_are_one_line_errors(tmp_path, names, named):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"")
    out = sam2flow(
        "segment", "--frames", folder, "--out", tmp_path / "o", "--point", "1,1", *FAST, check=False
    )
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert all(n in out.stderr for n in named), out.stderr
    assert not (tmp_path / "o").exists()


def subcommands(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner, subsub in subcommands(sub):
                    yield f"{name} {inner}", subsub


def test_every_option_of_every_subcommand_explains_itself_and_its_default():
    checked = 0
    for name, sub in subcommands(build_parser()):
        text = sub.format_help()
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help, f"sam2flow {name} {action.option_strings}: no help"
            if action.default not in (None, False, argparse.SUPPRESS) and not action.required:
                assert f"(default: {action.default})" in text, (name, action.option_strings)
            checked += 1
    assert checked > 50
    assert "(default: 400)" in sam2flow("extract", "--help").stdout


def test_frames_are_read_in_index_order_not_name_order(tmp_path):
    from sam2flow.frame_folders import frame_paths

    for name in ("10.jpg", "9.jpg", "0100.jpg"):
        (tmp_path / name).write_bytes(b"")
    assert list(frame_paths(tmp_path)) == [9, 10, 100]
    assert np.all(np.diff(list(frame_paths(tmp_path))) > 0)


def frame_folder_error(folder, names) -> str:
    from sam2flow.errors import UserError
    from sam2flow.frame_folders import frame_paths

    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"")
    with pytest.raises(UserError) as err:
        frame_paths(folder)
    return str(err.value)


def test_frame_folder_errors_name_the_file_and_the_fix(tmp_path):
    assert frame_folder_error(tmp_path / "a", ["00000.jpg", "frame_a.jpg"]) == (
        f"frame file name is not an integer frame index: {tmp_path / 'a' / 'frame_a.jpg'}: "
        "name frames by their index (ffmpeg ... -start_number 0 DIR/%05d.jpg)"
    )
    assert frame_folder_error(tmp_path / "b", ["00001.jpg", "0000001.jpg"]) in [
        f"two files for frame 1: {one} and {other}: {tmp_path / 'b'}: keep one file per frame index"
        for one, other in [("00001.jpg", "0000001.jpg"), ("0000001.jpg", "00001.jpg")]
    ]
    assert frame_folder_error(tmp_path / "c", ["notes.txt"]) == (
        f"no JPEG frames in batch folder: {tmp_path / 'c'}: extract the frames again"
    )


def test_files_other_than_frames_are_passed_over_not_an_end(tmp_path):
    from sam2flow.frame_folders import frame_paths

    for i in range(20):
        (tmp_path / f"{i:05d}.jpg").write_bytes(b"")
        (tmp_path / f"{i:05d}.txt").write_bytes(b"")
    assert list(frame_paths(tmp_path)) == list(range(20))


def test_a_folder_without_a_manifest_says_to_extract_first(tmp_path):
    from sam2flow.errors import UserError
    from sam2flow.frame_folders import read_manifest

    with pytest.raises(UserError) as err:
        read_manifest(tmp_path)
    assert str(err.value) == (
        f"frames not extracted: {tmp_path / 'frames.json'}: "
        "run 'sam2flow extract' (or the workflow) first"
    )


def test_a_frame_index_past_32_bits_names_the_file_and_the_fix(tmp_path):
    from sam2flow.frame_folders import MAX_FRAME, frame_paths

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / f"{MAX_FRAME}.jpg").write_bytes(b"")  # the last index there is
    assert list(frame_paths(tmp_path / "a")) == [MAX_FRAME]
    assert frame_folder_error(tmp_path / "b", [f"{MAX_FRAME + 1}.jpg"]) == (
        f"frame file name is not a frame index (over 2,147,483,647): "
        f"{tmp_path / 'b' / f'{MAX_FRAME + 1}.jpg'}: "
        "name frames by their index (ffmpeg ... -start_number 0 DIR/%05d.jpg)"
    )


def test_a_gap_in_a_users_frames_names_the_frame_the_span_and_the_fix(tmp_path):
    from sam2flow.errors import UserError
    from sam2flow.frame_folders import check_consecutive

    check_consecutive([3, 4, 5], tmp_path)
    with pytest.raises(UserError) as err:
        check_consecutive([3, 4, 6, 8], tmp_path)
    assert str(err.value) == (
        f"frame 5 is missing (2 missing, 0 extra; the folder holds frames 3-8): {tmp_path}: "
        "give every frame from the first to the last, or extract the video with sam2flow extract"
    )


def test_frames_of_two_sizes_or_a_damaged_frame_name_the_file_and_the_fix(tmp_path):
    import cv2

    from sam2flow.errors import UserError
    from sam2flow.frame_folders import check_frame_sizes

    paths = {}
    for frame, (h, w) in {7: (20, 30), 8: (20, 30), 9: (20, 32)}.items():
        paths[frame] = tmp_path / f"{frame}.jpg"
        cv2.imwrite(str(paths[frame]), np.zeros((h, w, 3), np.uint8))
    check_frame_sizes({7: paths[7], 8: paths[8]})
    with pytest.raises(UserError) as err:
        check_frame_sizes(paths)
    assert str(err.value) == (
        f"frame 9 is 32x20 but frame 7 is 30x20: {paths[9]}: "
        "give a folder of one video's frames, all of one size"
    )
    paths[8].write_bytes(b"not a jpeg")
    with pytest.raises(UserError) as err:
        check_frame_sizes(paths)
    assert str(err.value) == (
        f"cannot read frame (cannot identify image file '{paths[8]}'): {paths[8]}: "
        "extract the frames again"
    )
