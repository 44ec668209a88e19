"""Prompts from DeepLabCut files and from the config."""

import sys

import numpy as np
import pandas as pd
import pytest

from sam2flow.errors import UserError
from sam2flow.prompts import (
    PromptOptions,
    check_frame_count,
    dlc_batch_prompt,
    manual_prompt,
    prompt_for_batch,
    read_dlc,
)

from conftest import listed_in_troubleshooting, shared_file


def write_multi_animal(path, frames=10, likelihood=0.9):
    """A DeepLabCut multi-animal prediction CSV (4 header rows)."""
    cols = pd.MultiIndex.from_tuples(
        [
            ("DLC_resnet50", ind, bp, c)
            for ind in ("mouse1", "mouse2")
            for bp in ("snout", "tailbase")
            for c in ("x", "y", "likelihood")
        ],
        names=["scorer", "individuals", "bodyparts", "coords"],
    )
    data = np.zeros((frames, len(cols)))
    for f in range(frames):
        data[f] = [
            10 + f,
            20,
            likelihood,
            30 + f,
            40,
            likelihood,
            100 + f,
            120,
            likelihood,
            130,
            140,
            0.1,
        ]
    pd.DataFrame(data, columns=cols).to_csv(path)
    return path


def test_real_label_file_csv_parses():
    kp = read_dlc(shared_file("CollectedData_Pranav.csv"))
    assert kp.bodyparts == ["snout", "leftear", "rightear", "tailbase"]
    assert kp.individuals == ["single"] and kp.is_label_file
    assert kp.xyl.shape[1:] == (1, 4, 3)
    assert kp.frames[0] == 0  # img0000.png


def test_real_label_file_h5_matches_the_csv():
    pytest.importorskip("tables")
    csv = read_dlc(shared_file("CollectedData_Pranav.csv"))
    h5 = read_dlc(shared_file("CollectedData_Pranav.h5"))
    assert h5.bodyparts == csv.bodyparts
    np.testing.assert_allclose(h5.xyl, csv.xyl, rtol=1e-5, equal_nan=True)


def test_multi_animal_file_gives_one_object_per_individual(tmp_path):
    kp = read_dlc(write_multi_animal(tmp_path / "pred.csv"))
    prompt = dlc_batch_prompt(kp, list(range(10)))
    assert sorted(prompt.objects) == [1, 2]
    assert len(prompt.objects[1].points) == 2


def test_low_likelihood_points_are_dropped(tmp_path):
    kp = read_dlc(write_multi_animal(tmp_path / "pred.csv"))
    prompt = dlc_batch_prompt(kp, list(range(10)), cutoff=0.6)
    # mouse2's tailbase has likelihood 0.1: only its snout is a click.
    np.testing.assert_allclose(prompt.objects[2].points, [[100 + prompt.frame, 120]])


def test_all_points_below_cutoff_means_no_prompt(tmp_path):
    kp = read_dlc(write_multi_animal(tmp_path / "pred.csv", likelihood=0.2))
    assert dlc_batch_prompt(kp, [0, 1, 2], cutoff=0.6) is None


def test_prompt_frame_is_the_one_with_most_usable_points(tmp_path):
    path = write_multi_animal(tmp_path / "pred.csv")
    table = pd.read_csv(path, header=[0, 1, 2, 3], index_col=0)
    table.iloc[:, 2::3] = 0.2  # every likelihood low ...
    table.iloc[7, 2::3] = 0.95  # ... except on frame 7
    table.to_csv(path)
    assert dlc_batch_prompt(read_dlc(path), list(range(10))).frame == 7


def test_scale_and_offset_map_dlc_to_video_coordinates(tmp_path):
    kp = read_dlc(write_multi_animal(tmp_path / "pred.csv"))
    prompt = dlc_batch_prompt(kp, [0], scale=2.0, offset=(5, 7))
    np.testing.assert_allclose(prompt.objects[1].points[0], [10 * 2 + 5, 20 * 2 + 7])


def test_nans_are_not_clicks(tmp_path):
    path = write_multi_animal(tmp_path / "pred.csv", frames=1)
    table = pd.read_csv(path, header=[0, 1, 2, 3], index_col=0)
    table.iloc[0, 0] = np.nan
    table.to_csv(path)
    prompt = dlc_batch_prompt(read_dlc(path), [0])
    assert len(prompt.objects[1].points) == 1


def test_frame_count_mismatch_names_the_file(tmp_path):
    path = write_multi_animal(tmp_path / "pred.csv", frames=10)
    with pytest.raises(UserError, match="has 10 frame rows but the video has 12 frames") as info:
        check_frame_count(read_dlc(path), 12)
    assert str(path) in str(info.value)


def test_unknown_bodypart_lists_the_known_ones(tmp_path):
    path = write_multi_animal(tmp_path / "pred.csv")
    with pytest.raises(UserError, match="unknown bodypart.*tail.*snout, tailbase"):
        read_dlc(path).select(["tail"])


def test_wrong_header_rows_are_an_error_naming_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("frame,x,y\n0,1,2\n")
    with pytest.raises(UserError, match="line 1.*not a DeepLabCut CSV") as info:
        read_dlc(path)
    assert "bad.csv" in str(info.value)


def test_h5_without_pytables_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tables(name, *args, **kwargs):
        if name == "tables":
            raise ImportError("No module named 'tables'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tables)
    path = tmp_path / "pred.h5"
    path.write_bytes(b"\x89HDF")
    with pytest.raises(UserError) as info:
        read_dlc(path)
    assert str(info.value) == (
        f"reading .h5 files needs PyTables: {path}: "
        "pip install 'sam2flow[h5]' (or give the CSV export)"
    )


def test_manual_points_box_and_prompt_frame():
    prompt = manual_prompt(12, points="210,350;300,400,0", box="10,20,110,220")
    obj = prompt.objects[1]
    assert prompt.frame == 12
    np.testing.assert_array_equal(obj.labels, [1, 0])
    np.testing.assert_allclose(obj.box, [10, 20, 110, 220])


def test_manual_prompt_outside_the_batch_means_no_prompt():
    assert prompt_for_batch([0, 1, 2], PromptOptions(points="5,5", prompt_frame=40)) is None
    assert prompt_for_batch([39, 40, 41], PromptOptions(points="5,5", prompt_frame=40)).frame == 40


def test_mask_png_prompt(tmp_path):
    import cv2

    img = np.zeros((20, 30), np.uint8)
    img[5:10, 5:15] = 255
    cv2.imwrite(str(tmp_path / "m.png"), img)
    obj = manual_prompt(0, mask=tmp_path / "m.png").objects[1]
    assert obj.mask.shape == (20, 30) and obj.mask.sum() == 50


def test_a_first_frame_without_any_detection_keeps_its_row(tmp_path):
    """pandas would read an all-empty first row of a multi-row-header CSV as index names."""
    path = write_multi_animal(tmp_path / "p.csv", frames=10)
    table = pd.read_csv(path, header=[0, 1, 2, 3], index_col=0)
    table.iloc[0] = np.nan  # no animal found on frame 0: DeepLabCut writes empty cells
    table.to_csv(path)
    keypoints = read_dlc(path)
    assert keypoints.frames.tolist() == list(range(10))
    assert np.isnan(keypoints.xyl[0, :, :, 0]).all() and keypoints.xyl[1, 0, 0, 0] == 11


def test_an_h5_file_without_pytables_names_the_file_and_the_fix(monkeypatch):
    """The h5 extra is optional: without PyTables a DeepLabCut .h5 is one line, not a
    traceback (``import tables`` fails as it does where it is not installed)."""
    path = shared_file("CollectedData_Pranav.h5")
    monkeypatch.setitem(sys.modules, "tables", None)
    with pytest.raises(UserError) as info:
        read_dlc(path)
    assert "needs PyTables" in str(info.value) and str(path) in str(info.value)
    listed_in_troubleshooting(str(info.value))


CONFIG_PROMPTS = {"bodyparts": ["snout"], "likelihood_cutoff": 0.4, "scale": 2.0, "offset": [3, -4]}


def test_a_sheet_row_and_the_config_make_one_prompt_option_each():
    row = {"prompts": "m.csv", "points": "", "box": "", "mask": "", "prompt_frame": ""}
    assert PromptOptions.from_config(row, CONFIG_PROMPTS) == PromptOptions(
        prompts_file="m.csv", prompt_frame=0, bodyparts=["snout"], cutoff=0.4, scale=2.0,
        offset=(3, -4),
    )  # fmt: skip
    clicked = {"prompts": "", "points": "1,2", "box": "0,0,5,5", "mask": "m.png"}
    options = PromptOptions.from_config({**clicked, "prompt_frame": " 12 "}, CONFIG_PROMPTS)
    assert (options.prompts_file, options.points, options.box) == (None, "1,2", "0,0,5,5")
    assert (options.mask, options.prompt_frame) == ("m.png", 12)


def test_a_jobs_prompt_parameters_are_the_sheets_and_the_configs_part_only():
    """A change to any of them reruns the video's batches; the video's length and the
    carried masks are the job's own and change nothing."""
    options = PromptOptions.from_config({"points": "1,2"}, CONFIG_PROMPTS)
    assert options.job_params() == {
        "prompts_file": None, "points": "1,2", "box": None, "mask": None, "prompt_frame": 0,
        "bodyparts": ["snout"], "cutoff": 0.4, "scale": 2.0, "offset": (3, -4),
    }  # fmt: skip
    from dataclasses import replace

    job = replace(options, video_frames=9, carry_from="m.npz", carry_image="8.jpg")
    assert job.job_params() == options.job_params()


def test_the_segment_commands_options_make_the_same_prompt_options():
    from sam2flow.cli import build_parser

    args = build_parser().parse_args(
        ["segment", "--frames", "f", "--out", "o", "--prompts", "m.csv", "--bodyparts",
         "snout,,tail", "--likelihood-cutoff", "0.4", "--scale", "2", "--offset=3,-4",
         "--video-frames", "30", "--carry-from", "p.npz", "--carry-image", "9.jpg"]
    )  # fmt: skip
    assert PromptOptions.from_args(args) == PromptOptions(
        prompts_file="m.csv", bodyparts=["snout", "tail"], cutoff=0.4, scale=2.0,
        offset=(3.0, -4.0), video_frames=30, carry_from="p.npz", carry_image="9.jpg",
    )  # fmt: skip
    clicks = ["segment", "--frames", "f", "--out", "o", "--point", "1,2", "--point", "3,4,0"]
    options = PromptOptions.from_args(build_parser().parse_args([*clicks, "--prompt-frame", "7"]))
    assert (options.points, options.prompt_frame, options.prompts_file) == ("1,2;3,4,0", 7, None)
    assert (options.bodyparts, options.scale, options.offset) == ([], 1.0, (0.0, 0.0))
    box = build_parser().parse_args(["segment", "--frames", "f", "--out", "o", "--box", "0,0,5,5"])
    options = PromptOptions.from_args(box)
    assert (options.box, options.points, options.mask) == ("0,0,5,5", None, None)
    mask = build_parser().parse_args(["segment", "--frames", "f", "--out", "o", "--mask", "m.png"])
    options = PromptOptions.from_args(mask)
    assert (options.mask, options.box, options.points) == ("m.png", None, None)


def test_scale_and_offset_of_the_command_line_move_the_dlc_points(tmp_path):
    from sam2flow.cli import build_parser

    path = write_multi_animal(tmp_path / "m.csv")
    args = build_parser().parse_args(
        ["segment", "--frames", "f", "--out", "o", "--prompts", str(path), "--scale", "2",
         "--offset=3,-4"]
    )  # fmt: skip
    prompt = prompt_for_batch([0, 1], PromptOptions.from_args(args))
    assert prompt.objects[1].points[0].tolist() == [2 * 10 + 3, 2 * 20 - 4]
