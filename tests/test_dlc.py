"""DeepLabCut files read row by row into keypoints, and the batch prompt chosen from them:
small files written here, each test through the keypoints, prompt or error it gives."""

from __future__ import annotations

import codecs

import cv2
import numpy as np
import pandas as pd
import pytest

from sam2flow.errors import UserError, brief
from sam2flow.prompts import (
    PromptOptions,
    check_frame_count,
    dlc_batch_prompt,
    prompt_for_batch,
    read_dlc,
)

from conftest import listed_in_troubleshooting


def write_csv(path, rows, bodyparts=("snout", "tail"), likelihood=True, index=None):
    """A single-animal DeepLabCut CSV: ``rows`` holds (x, y[, likelihood]) per bodypart."""
    coords = ("x", "y", "likelihood") if likelihood else ("x", "y")
    lines = [
        ",".join(["scorer"] + ["DLC"] * len(bodyparts) * len(coords)),
        ",".join(["bodyparts"] + [b for b in bodyparts for _ in coords]),
        ",".join(["coords"] + list(coords) * len(bodyparts)),
    ]
    for i, row in enumerate(rows):
        name = str(i) if index is None else index[i]
        lines.append(",".join([name] + ["" if v is None else str(v) for v in row]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rows_become_frames_x_individuals_x_bodyparts_x_xyl(tmp_path):
    kp = read_dlc(write_csv(tmp_path / "a.csv", [[1, 2, 0.9, 3, 4, 0.5], [5, 6, 0.8, 7, 8, 0.7]]))
    assert kp.frames.tolist() == [0, 1] and kp.individuals == ["single"]
    assert kp.bodyparts == ["snout", "tail"] and kp.xyl.shape == (2, 1, 2, 3)
    assert kp.xyl.dtype == np.float32
    assert kp.xyl[1, 0, 1].tolist() == pytest.approx([7, 8, 0.7])
    assert kp.is_label_file is False and kp.path == str(tmp_path / "a.csv")


def test_a_label_file_is_sparse_certain_and_numbered_by_its_image_names(tmp_path):
    names = ["labeled-data/m4s1/img0042.png", "labeled-data/m4s1/img0107.png"]
    path = write_csv(tmp_path / "l.csv", [[1, 2, 3, 4], [5, 6, None, None]], likelihood=False,
                     index=names)  # fmt: skip
    kp = read_dlc(path)
    assert kp.frames.tolist() == [42, 107] and kp.is_label_file
    assert kp.xyl[:, 0, :, 2].tolist() == [[1.0, 1.0], [1.0, 0.0]]  # labelled: certain
    check_frame_count(kp, 5000)  # sparse: any video length


def test_a_row_without_a_frame_number_names_its_line(tmp_path):
    path = write_csv(tmp_path / "l.csv", [[1, 2, 0.9, 3, 4, 0.9]] * 2, index=["7", "intro"])
    with pytest.raises(UserError, match=r"line 5: cannot read a frame number from 'intro'"):
        read_dlc(path)


def test_a_prediction_file_needs_a_row_per_video_frame(tmp_path):
    kp = read_dlc(write_csv(tmp_path / "a.csv", [[1, 2, 0.9, 3, 4, 0.9]] * 5))
    check_frame_count(kp, 5)
    with pytest.raises(UserError, match=r"has 5 frame rows but the video has 6 frames"):
        check_frame_count(kp, 6)


@pytest.mark.parametrize(
    "first_lines, message",
    [
        ("frame,x,y\n0,1,2\n", "line 1 starts with 'frame', not 'scorer'"),
        ("scorer,D,D\nbodyparts,a,a\nx,x,y\n0,1,2\n", "unexpected header rows"),
        ("scorer,D,D\nfoo,a,a\ncoords,x,y\n0,1,2\n", "unexpected header rows"),
    ],
)
def test_a_file_that_is_not_a_dlc_csv_says_so(tmp_path, first_lines, message):
    (tmp_path / "x.csv").write_text(first_lines)
    with pytest.raises(UserError, match=message):
        read_dlc(tmp_path / "x.csv")


def test_a_3d_file_is_not_read_as_pixels(tmp_path):
    """DeepLabCut's triangulated files have coords x, y, z in world units, no likelihood:
    read as a label file they would be clicks at made-up pixels."""
    path = tmp_path / "m_3D.csv"
    path.write_text("scorer,D,D,D\nbodyparts,a,a,a\ncoords,x,y,z\n0,1.5,2,30\n")
    assert read_error(path) == (
        "coords include z: a 3D (triangulated) file, not one camera's predictions: "
        f"{path}: give the 2D DeepLabCut file of this video (x, y and likelihood)"
    )


def test_coords_without_y_are_named(tmp_path):
    (tmp_path / "x.csv").write_text("scorer,D,D\nbodyparts,a,a\ncoords,x,likelihood\n0,1,0.9\n")
    with pytest.raises(UserError, match=r"coords \(header line 3\) lack y"):
        read_dlc(tmp_path / "x.csv")


def test_missing_and_unknown_files_are_named(tmp_path):
    with pytest.raises(UserError, match=r"prompt file not found"):
        read_dlc(tmp_path / "none.csv")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(UserError, match=r"unknown prompt file type: .*p.txt"):
        read_dlc(tmp_path / "p.txt")


def test_selected_bodyparts_keep_the_order_asked_for(tmp_path):
    kp = read_dlc(write_csv(tmp_path / "a.csv", [[1, 2, 0.9, 3, 4, 0.5]]))
    picked = kp.select(["tail", "snout"])
    assert picked.bodyparts == ["tail", "snout"]
    assert picked.xyl[0, 0, :, 0].tolist() == [3, 1] and kp.select([]) is kp


def keypoints(tmp_path, rows):
    return read_dlc(write_csv(tmp_path / "a.csv", rows))


def test_the_prompt_frame_has_most_usable_points_then_highest_likelihood(tmp_path):
    rows = [
        [1, 1, 0.7, None, None, None],  # one point
        [2, 2, 0.7, 3, 3, 0.7],  # two points, mean 0.7
        [4, 4, 0.9, 5, 5, 0.9],  # two points, mean 0.9: chosen
        [6, 6, 0.9, 7, 7, 0.9],  # a tie with the row before: the earlier wins
    ]
    prompt = dlc_batch_prompt(keypoints(tmp_path, rows), [0, 1, 2, 3])
    assert prompt.frame == 2 and prompt.objects[1].points.tolist() == [[4, 4], [5, 5]]
    assert prompt.objects[1].labels.tolist() == [1, 1]
    assert dlc_batch_prompt(keypoints(tmp_path, rows), [0, 1]).frame == 1


def test_points_at_the_cutoff_count_and_below_do_not(tmp_path):
    rows = [[1, 1, 0.6, 2, 2, 0.59]]
    prompt = dlc_batch_prompt(keypoints(tmp_path, rows), [0], cutoff=0.6)
    assert prompt.objects[1].points.tolist() == [[1, 1]]
    assert dlc_batch_prompt(keypoints(tmp_path, rows), [0], cutoff=0.61) is None


def test_frames_outside_the_batch_are_never_chosen(tmp_path):
    rows = [[1, 1, 0.99, 2, 2, 0.99], [3, 3, 0.7, None, None, None]]
    assert dlc_batch_prompt(keypoints(tmp_path, rows), [1]).frame == 1
    assert dlc_batch_prompt(keypoints(tmp_path, rows), [5, 6]) is None


def test_scale_then_offset(tmp_path):
    rows = [[10, 20, 0.9, None, None, None]]
    prompt = dlc_batch_prompt(keypoints(tmp_path, rows), [0], scale=2.0, offset=(1.0, -3.0))
    assert prompt.objects[1].points.tolist() == [[21, 37]]


def test_other_frames_that_prompt_every_object_are_anchors(tmp_path):
    rows = [
        [1, 1, 0.9, 2, 2, 0.9],  # the prompt frame
        [3, 3, 0.8, None, None, None],  # prompts the object too: an anchor
        [None, None, None, None, None, None],  # nothing usable: not an anchor
        [5, 5, 0.3, 6, 6, 0.8],  # one usable point: an anchor
    ]
    prompt = dlc_batch_prompt(keypoints(tmp_path, rows), [0, 1, 2, 3])
    assert prompt.frame == 0 and sorted(prompt.anchors) == [1, 3]
    assert prompt.anchors[3][1].points.tolist() == [[6, 6]]
    assert prompt.source == str(tmp_path / "a.csv")


def test_a_batch_prompt_from_a_dlc_file_with_bodyparts_cutoff_scale_and_offset(tmp_path):
    rows = [[1, 2, 0.9, 3, 4, 0.7], [5, 6, 0.95, 7, 8, 0.95]]
    path = write_csv(tmp_path / "a.csv", rows)
    prompt = prompt_for_batch([0, 1], PromptOptions(prompts_file=path, video_frames=2))
    assert prompt.frame == 1 and prompt.objects[1].points.tolist() == [[5, 6], [7, 8]]
    prompt = prompt_for_batch(
        [0],
        PromptOptions(
            prompts_file=path, bodyparts=["tail"], cutoff=0.5, scale=2.0, offset=(1.0, 1.0)
        ),
    )
    assert prompt.frame == 0 and prompt.objects[1].points.tolist() == [[7, 9]]
    assert prompt_for_batch([0], PromptOptions(prompts_file=path, cutoff=0.99)) is None
    with pytest.raises(UserError) as info:
        prompt_for_batch([0], PromptOptions(prompts_file=path, video_frames=3))
    assert str(info.value) == (
        f"has 2 frame rows but the video has 3 frames: {path}: "
        "give the prediction file made from this video"
    )


def test_a_batch_prompt_from_a_box_or_a_mask_alone(tmp_path):
    cv2.imwrite(str(tmp_path / "m.png"), np.eye(4, dtype=np.uint8) * 255)
    box = prompt_for_batch([3, 4], PromptOptions(box="0,0,2,2")).objects[1]
    assert box.box.tolist() == [0, 0, 2, 2] and box.points is None
    mask = prompt_for_batch([3, 4], PromptOptions(mask=tmp_path / "m.png", prompt_frame=4))
    assert mask.frame == 4 and mask.objects[1].mask.shape == (4, 4)
    assert prompt_for_batch([3, 4], PromptOptions()) is None


def test_selected_keypoints_keep_the_file_frames_and_individuals(tmp_path):
    kp = read_dlc(write_csv(tmp_path / "l.csv", [[1, 2, 3, 4]], likelihood=False))
    picked = kp.select(["tail"])
    assert (picked.path, picked.frames.tolist(), picked.individuals, picked.is_label_file) == (
        kp.path, [0], ["single"], True
    )  # fmt: skip
    with pytest.raises(UserError) as info:
        kp.select(["ear", "paw"])
    assert str(info.value) == (
        "unknown bodypart(s) ear, paw (line 3 of the header lists snout, tail): "
        f"{kp.path}: fix 'bodyparts' in the config"
    )


def test_a_label_file_with_the_image_path_in_three_index_columns(tmp_path):
    """Newer DeepLabCut label files: ``labeled-data,m4s1,img0042.png,x,y``."""
    (tmp_path / "CollectedData.csv").write_text(
        "scorer,,,Pranav,Pranav,Pranav,Pranav\n"
        "bodyparts,,,snout,snout,tail,tail\n"
        "coords,,,x,y,x,y\n"
        "labeled-data,m4s1,img0042.png,1,2,3,\n"
        "labeled-data,m4s1,img0107.png,5,6,7,8\n"
    )
    kp = read_dlc(tmp_path / "CollectedData.csv")
    assert kp.frames.tolist() == [42, 107] and kp.bodyparts == ["snout", "tail"]
    assert kp.xyl[0, 0, :, :2].tolist()[0] == [1, 2]
    # a labelled point needs both coordinates: tail on frame 42 has no y
    assert kp.xyl[:, 0, :, 2].tolist() == [[1.0, 0.0], [1.0, 1.0]]


def test_a_header_with_bytes_that_are_not_utf8_still_reads(tmp_path):
    path = write_csv(tmp_path / "a.csv", [[1, 2, 0.9, 3, 4, 0.9]])
    path.write_bytes(path.read_bytes().replace(b"DLC", b"D\xe9C", 1))
    assert read_dlc(path).bodyparts == ["snout", "tail"]


def test_an_hdf5_file_reads_like_its_csv(tmp_path):
    pytest.importorskip("tables")
    csv = write_csv(tmp_path / "a.csv", [[1, 2, 0.9, 3, 4, 0.5], [5, 6, 0.8, 7, 8, 0.7]])
    table = pd.read_csv(csv, header=[0, 1, 2], index_col=0)
    table.to_hdf(tmp_path / "a.hdf5", key="df_with_missing")
    got, want = read_dlc(tmp_path / "a.hdf5"), read_dlc(csv)
    assert got.frames.tolist() == want.frames.tolist()
    assert np.array_equal(got.xyl, want.xyl) and got.bodyparts == want.bodyparts


def test_prompt_points_and_labels_have_sam2s_dtypes(tmp_path):
    prompt = dlc_batch_prompt(
        read_dlc(write_csv(tmp_path / "a.csv", [[1, 2, 0.9, 3, 4, 0.9]])), [0]
    )
    assert prompt.objects[1].points.dtype == np.float32
    assert prompt.objects[1].labels.dtype == np.int32


def write_two_animals(path, rows):
    """A multi-animal CSV (4 header rows): ``rows`` holds (x, y, likelihood) of the snout
    of mouse1, then of mouse2."""
    cols = pd.MultiIndex.from_tuples(
        [
            ("DLC", ind, "snout", c)
            for ind in ("mouse1", "mouse2")
            for c in ("x", "y", "likelihood")
        ],
        names=["scorer", "individuals", "bodyparts", "coords"],
    )
    pd.DataFrame(rows, columns=cols, dtype=float).to_csv(path)
    return path


def test_an_anchor_must_prompt_every_object_of_the_batch(tmp_path):
    nan = float("nan")
    rows = [
        [1, 1, 0.9, 2, 2, 0.9],  # both: the prompt frame
        [3, 3, 0.9, nan, nan, nan],  # mouse1 only: not an anchor
        [4, 4, 0.9, 5, 5, 0.8],  # both: an anchor
    ]
    kp = read_dlc(write_two_animals(tmp_path / "m.csv", rows))
    prompt = dlc_batch_prompt(kp, [0, 1, 2])
    assert prompt.frame == 0 and sorted(prompt.objects) == [1, 2]
    assert sorted(prompt.anchors) == [2] and prompt.anchors[2][2].points.tolist() == [[5, 5]]


@pytest.mark.parametrize(
    "text, message",
    [
        ("scorer,D,D\nbodyparts,a,a\ncoords,x,y\n0,1,2,3,4\n", "cannot parse CSV ("),
        # a header cell the csv module refuses (over its field size limit): one line too
        ('"' + "a" * 200_000 + '"\nx\n', "cannot parse CSV (field larger than field "
         "limit (131072)): {path}: export it again"),
        # pandas ends this one with a newline: the message is still one line
        ("scorer,D,D\nbodyparts,a,a\ncoords,x,y\n0,1,2\n1,1,2,3,4\n", "cannot parse CSV (Error "
         "tokenizing data. C error: Expected 3 fields in line 5, saw 5): {path}: export it again"),
        ("x\n", "line 1 starts with 'x', not 'scorer': not a DeepLabCut CSV: {path}: "
         "give a DeepLabCut prediction or label file (3 or 4 header rows)"),
        ("scorer,D\nfoo,a\nbar,x\n", "unexpected header rows ['scorer', 'foo', 'bar']: expected "
         "scorer/bodyparts/coords or scorer/individuals/bodyparts/coords: {path}: "
         "export the file again from DeepLabCut"),
        ("scorer,D,D\nbodyparts,a,a\ncoords,x,likelihood\n0,1,0.9\n", "coords (header line 3) "
         "lack y: {path}: export the file again from DeepLabCut (coords x, y and likelihood)"),
        ("scorer,D,D\nbodyparts,a,a\ncoords,x,y\nintro,1,2\n", "line 4: cannot read a frame "
         "number from 'intro': {path}: rows must be frame numbers or image names with a number"),
    ],
)  # fmt: skip
def test_each_dlc_error_is_one_line_with_the_file_and_the_fix(tmp_path, text, message):
    path = tmp_path / "x.csv"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        read_dlc(path)
    assert str(info.value).startswith(message.format(path=path))
    assert "\n" not in str(info.value)
    if message.startswith("cannot parse CSV"):
        assert str(info.value).endswith(f": {path}: export it again")


def read_error(path) -> str:
    """The one-line error ``read_dlc`` gives for ``path``, which the README must explain."""
    with pytest.raises(UserError) as info:
        read_dlc(path)
    return listed_in_troubleshooting(str(info.value)) and str(info.value)


def _excel_saved(text: str) -> dict[str, bytes]:
    """A DeepLabCut CSV as spreadsheet programs save it again, still comma-separated UTF-8."""
    lines = text.splitlines()
    return {
        "bom": ("\ufeff" + text).encode(),
        "crlf": text.replace("\n", "\r\n").encode(),
        "bom-crlf": ("\ufeff" + text.replace("\n", "\r\n")).encode(),
        "quoted": "".join(
            ",".join(f'"{c}"' for c in line.split(",")) + "\n" for line in lines
        ).encode(),
        "trailing-commas": "".join(line + ",,\n" for line in lines).encode(),
    }


@pytest.mark.parametrize("kind", list(_excel_saved("")))
def test_a_file_a_spreadsheet_saved_again_as_csv_reads_as_the_original(tmp_path, kind):
    """Opened in Excel and saved (as 'CSV UTF-8'): the same keypoints, not an error or an
    unnamed bodypart; the multi-animal file, whose header has more lines, too."""
    for writer in (write_csv, write_two_animals):
        rows = [[1.5, 2, 0.9, None, 4, 0.5], [5, 6, 0.8, 7, 8, 0.7]]
        original = writer(tmp_path / "original.csv", rows)
        saved = tmp_path / f"{kind}.csv"
        saved.write_bytes(_excel_saved(original.read_text())[kind])
        want, got = read_dlc(original), read_dlc(saved)
        assert got.frames.tolist() == want.frames.tolist() == [0, 1]
        assert (got.individuals, got.bodyparts) == (want.individuals, want.bodyparts)
        np.testing.assert_array_equal(got.xyl, want.xyl)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("semicolons", "cells are separated by semicolons, not commas: not a DeepLabCut CSV"),
        ("tabs", "cells are separated by tabs, not commas: not a DeepLabCut CSV"),
        ("utf16", "the file is UTF-16 text (a spreadsheet's 'Unicode Text'), not a CSV"),
        ("utf16-be", "the file is UTF-16 text (a spreadsheet's 'Unicode Text'), not a CSV"),
        ("value-unnamed", "line 6, cell 9: a value in a column the header lines name no "
         "bodypart or coordinate for"),
        ("value-no-coords", "line 4, cell 8: a value in a column the header lines name no "
         "bodypart or coordinate for"),
        ("value-no-bodypart", "line 4, cell 8: a value in a column the header lines name no "
         "bodypart or coordinate for"),
    ],
)  # fmt: skip
def test_a_file_a_spreadsheet_saved_in_another_form_is_named(tmp_path, kind, message):
    """Semicolons and decimal commas (a spreadsheet in a German locale), tabs or UTF-16
    ('Unicode Text'): one line naming what became of the file, never a misread number."""
    text = write_csv(tmp_path / "original.csv", [[1.5, 2, 0.9, 3, 4, 0.5]] * 3).read_text()
    data = {
        "semicolons": text.replace(",", ";").replace(".", ",").encode(),
        "tabs": text.replace(",", "\t").encode(),
        "utf16": text.encode("utf-16"),
        "utf16-be": codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
        "value-no-coords": "".join(
            line + (",snout" if i == 1 else "," if i == 2 else ",7") + "\n"
            for i, line in enumerate(text.splitlines())
        ).encode(),
        "value-no-bodypart": "".join(
            line + (",DLC" if i == 0 else "," if i == 1 else ",x" if i == 2 else ",7") + "\n"
            for i, line in enumerate(text.splitlines())
        ).encode(),
        "value-unnamed": "".join(
            line + (",,7" if i == 5 else ",,") + "\n" for i, line in enumerate(text.splitlines())
        ).encode(),
    }[kind]
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(data)
    assert read_error(path) == (
        f"{message}: {path}: give the file as DeepLabCut wrote it (a spreadsheet program "
        "that saves it again may change its separators, decimal marks and encoding)"
    )


def test_missing_and_unknown_files_name_the_fix(tmp_path):
    with pytest.raises(UserError) as info:
        read_dlc(tmp_path / "none.csv")
    assert str(info.value) == (
        f"prompt file not found: {tmp_path / 'none.csv'}: "
        "check the 'prompts' column of the sample sheet"
    )
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(UserError) as info:
        read_dlc(tmp_path / "p.txt")
    assert str(info.value) == (
        f"unknown prompt file type: {tmp_path / 'p.txt'}: give a DeepLabCut .csv or .h5 file"
    )


def test_an_anchor_needs_only_the_objects_of_the_prompt(tmp_path):
    nan = float("nan")
    rows = [
        [1, 1, 0.9, nan, nan, nan],  # mouse1 only: the prompt frame, one object
        [2, 2, 0.8, nan, nan, nan],  # mouse1 again: an anchor
        [nan, nan, nan, 3, 3, 0.5],  # mouse2 only: not an object of this batch's prompt
    ]
    prompt = dlc_batch_prompt(read_dlc(write_two_animals(tmp_path / "m.csv", rows)), [0, 1, 2])
    assert prompt.frame == 0 and sorted(prompt.objects) == [1]
    assert sorted(prompt.anchors) == [1]


def h5_table(path, columns, names, key="df_with_missing", values=((1.0, 2.0, 0.9),)):
    """A DeepLabCut-like HDF5 table (PyTables), one row per entry of ``values``."""
    pytest.importorskip("tables")
    cols = pd.MultiIndex.from_tuples(columns, names=names)
    pd.DataFrame(list(values), columns=cols).to_hdf(path, key=key)
    return path


SNOUT = [("DLC", "snout", c) for c in ("x", "y", "likelihood")]
LEVELS = ["scorer", "bodyparts", "coords"]


def test_reading_an_h5_file_leaves_it_untouched(tmp_path):
    """Snakemake reruns whatever is newer than its outputs: reading must not touch it."""
    path = h5_table(tmp_path / "p.h5", SNOUT, LEVELS)
    before = path.stat().st_mtime_ns
    read_dlc(path)
    assert path.stat().st_mtime_ns == before


def test_an_h5_file_with_several_tables_reads_df_with_missing(tmp_path):
    tail = [("DLC", "tail", c) for c in ("x", "y")]
    path = h5_table(tmp_path / "p.h5", tail, LEVELS, key="a_first", values=[(5.0, 6.0)])
    h5_table(path, SNOUT, LEVELS)  # listed after "a_first"
    assert read_dlc(path).bodyparts == ["snout"]


def test_an_h5_file_whose_one_table_has_another_name_reads_it(tmp_path):
    path = h5_table(tmp_path / "p.h5", SNOUT, LEVELS, key="df")
    assert read_dlc(path).xyl[0, 0, 0].tolist() == pytest.approx([1, 2, 0.9])


def test_an_h5_file_pandas_cannot_read_is_one_line(tmp_path):
    pytest.importorskip("tables")
    path = tmp_path / "p.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(UserError) as info:
        read_dlc(path)
    with pytest.raises(Exception) as hdf5:  # what PyTables itself says, in its last line
        pd.HDFStore(path, mode="r")
    assert (
        str(info.value) == f"cannot read HDF5 table ({brief(hdf5.value)}): {path}: export it again"
    )


@pytest.mark.parametrize("kind", ["sleap", "empty"])
def test_an_h5_file_without_a_table_is_named_as_another_tools(tmp_path, kind):
    """A SLEAP analysis file (plain HDF5 datasets, no pandas table) or an empty store: the
    message says what the file lacks, not an index error."""
    pytest.importorskip("tables")
    path = tmp_path / f"{kind}.h5"
    if kind == "sleap":
        import h5py

        with h5py.File(path, "w") as f:
            f["tracks"] = np.zeros((1, 2, 4, 10))
            f["node_names"] = [b"snout", b"tail"]
    else:
        pd.HDFStore(path, mode="w").close()
    assert read_error(path) == (
        f"no table in this HDF5 file (another tool's file, such as SLEAP's?): {path}: "
        "give the .h5 (or .csv) DeepLabCut wrote for this video"
    )


@pytest.mark.parametrize(
    "names, shown",
    [
        (["scorer", None, "coords"], "['scorer', '', 'coords']"),
        (["scorer", "bodyparts", "what"], "['scorer', 'bodyparts', 'what']"),
    ],
)
def test_an_h5_table_without_bodyparts_or_coords_levels_is_named(tmp_path, names, shown):
    path = h5_table(tmp_path / "p.h5", SNOUT, names)
    with pytest.raises(UserError) as info:
        read_dlc(path)
    assert str(info.value) == (
        f"columns have levels {shown}, expected bodyparts and coords: {path}: "
        "export the file again from DeepLabCut"
    )


def test_a_file_with_no_coordinate_columns_lacks_x_and_y(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("scorer\nbodyparts\ncoords\n0\n1\n")
    with pytest.raises(UserError) as info:
        read_dlc(path)
    assert str(info.value) == (
        f"coords (header line 3) lack x and y: {path}: "
        "export the file again from DeepLabCut (coords x, y and likelihood)"
    )


def test_a_cell_of_text_is_an_error_naming_its_line_and_column_but_empty_or_nan_is_missing(
    tmp_path,
):
    from sam2flow.errors import UserError

    with pytest.raises(UserError, match=r"^line 4: 'oops' is not a number \(DLC snout y\): "):
        read_dlc(write_csv(tmp_path / "a.csv", [[1, "oops", 0.9, 3, 4, 0.5]]))
    kp = read_dlc(write_csv(tmp_path / "b.csv", [[1, None, 0.9, 3, 4, 0.5], [1, "NaN", 0.9] * 2]))
    assert np.isnan(kp.xyl[0, 0, 0, 1]) and np.isnan(kp.xyl[1, 0, 0, 1])
    assert kp.xyl[0, 0, 1].tolist() == pytest.approx([3, 4, 0.5])


def test_a_label_with_y_but_no_x_is_not_a_labelled_point(tmp_path):
    kp = read_dlc(write_csv(tmp_path / "l.csv", [[None, 2, 3, 4]], likelihood=False))
    assert kp.xyl[0, 0, :, 2].tolist() == [0.0, 1.0]


def test_a_point_whose_y_is_missing_is_not_a_prompt_point(tmp_path):
    kp = read_dlc(write_csv(tmp_path / "a.csv", [[1, None, 0.9, 3, 4, 0.9]]))
    assert dlc_batch_prompt(kp, [0]).objects[1].points.tolist() == [[3, 4]]


def test_a_frame_twice_names_both_of_its_lines_and_the_fix(tmp_path):
    """Two files pasted together: the lines are the file's own (after 3 or 4 header rows)."""
    path = write_csv(tmp_path / "twice.csv", [[1, 2, 0.9, 3, 4, 0.9]] * 3, index=["0", "1", "0"])
    with pytest.raises(UserError) as info:
        read_dlc(path)
    assert str(info.value) == (
        f"lines 4 and 6 are both frame 0: {path}: "
        "give one row per frame (a file made by DeepLabCut for one video)"
    )
    two = write_two_animals(tmp_path / "two.csv", [[1, 1, 0.9, 2, 2, 0.9]] * 3)
    lines = two.read_text().splitlines()
    two.write_text("\n".join(lines[:-1] + ["1" + lines[-1][1:]]) + "\n")  # rows 0, 1, 1
    with pytest.raises(UserError, match=r"^lines 6 and 7 are both frame 1: "):
        read_dlc(two)


def test_a_cell_of_text_on_a_later_row_names_its_own_line_the_file_and_the_fix(tmp_path):
    path = write_csv(tmp_path / "a.csv", [[1, 2, 0.9, 3, 4, 0.5]] * 2 + [[1, 2, 0.9, "x", 4, 0.5]])
    with pytest.raises(UserError) as info:
        read_dlc(path)
    assert str(info.value) == (
        f"line 6: 'x' is not a number (DLC tail x): {path}: export the file again from DeepLabCut"
    )


@pytest.mark.parametrize("cell", [" ", "  NaN ", " nan", "NAN "])
def test_a_blank_or_nan_cell_with_spaces_around_is_a_missing_point(tmp_path, cell):
    kp = read_dlc(write_csv(tmp_path / "a.csv", [[1, cell, 0.9, 3, 4, 0.5]]))
    assert np.isnan(kp.xyl[0, 0, 0, 1]) and kp.xyl[0, 0, 1].tolist() == pytest.approx([3, 4, 0.5])


def test_a_row_of_a_frame_at_the_videos_length_is_beyond_it(tmp_path):
    """Frames count from 0: a video of 24 frames has no frame 24."""
    path = write_csv(tmp_path / "l.csv", [[1, 2], [3, 4]], likelihood=False, bodyparts=("a",),
                     index=["img0003.png", "img0024.png"])  # fmt: skip
    check_frame_count(read_dlc(path), 25)
    with pytest.raises(UserError) as info:
        check_frame_count(read_dlc(path), 24)
    assert str(info.value) == (
        f"rows name frames up to 24 but the video has 24 frames (0-23): {path}: "
        "give the file made from this video"
    )


def test_a_negative_row_number_is_no_frame(tmp_path):
    """A row numbered -1 is damage, not frame 1 (nor a frame no batch ever has)."""
    path = write_csv(tmp_path / "n.csv", [[1, 2, 0.9, 3, 4, 0.5]] * 2, index=["0", "-1"])
    with pytest.raises(UserError) as info:
        read_dlc(path)
    assert str(info.value) == (
        f"line 5: cannot read a frame number from -1: {path}: "
        "rows must be frame numbers or image names with a number"
    )
