"""The sample sheet to the letter: what is read, what each fault says in full, and how
``sam2flow init`` finds videos, matches DeepLabCut files and names rows."""

import logging
import os

import pytest

from sam2flow.errors import UserError
from sam2flow.samplesheet import (
    COLUMNS,
    dlc_match,
    find_videos,
    read_sample_sheet,
    sheet_for,
    video_name,
)


def sheet(tmp_path, text):
    path = tmp_path / "videos.tsv"
    path.write_text(text)
    return path


def test_every_column_is_there_in_order_indexed_by_name_and_stripped(tmp_path):
    path = sheet(tmp_path, "path\tvideo\tbox\nb.mp4\tb\t1,2,3,4\na.mp4\ta\t\n")
    table = read_sample_sheet(path)
    assert list(table.columns) == list(COLUMNS) and table.index.name == "video"
    assert table.index.tolist() == ["b", "a"]  # the sheet's order
    assert table.loc["b"].tolist() == ["b", "b.mp4", "", "", "1,2,3,4", "", ""]
    assert table.loc["a"].tolist() == ["a", "a.mp4", "", "", "", "", ""]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "path\tprompts\nv.mp4\t\n",
            "sample sheet lacks column(s) video (has path, prompts): {p}: the first line must "
            "name the columns, tab-separated: video, path, ...",
        ),
        (
            "x\ny\n",
            "sample sheet lacks column(s) video, path (has x): {p}: the first line must name "
            "the columns, tab-separated: video, path, ...",
        ),
        (
            "video\tpath\tpoint\tboxes\nv\ta.mp4\t1,1\t\n",
            "unknown column(s) point, boxes in the sample sheet: {p}: use only video, path, "
            "prompts, points, box, mask, prompt_frame",
        ),
        (
            "video\tpath\n",
            "the sample sheet lists no videos: {p}: add a row per video under the header: "
            "NAME<TAB>VIDEO PATH (sam2flow init writes one)",
        ),
        (
            "video\tpath\nv\ta.mp4\n\tb.mp4\n",
            "row 3 has an empty video name or path: {p}: fill in both columns",
        ),
        (
            "video\tpath\nv\ta.mp4\nw\tb.mp4\nw\tc.mp4\nv\td.mp4\n",
            "video name 'w' appears more than once: {p}: give each video a unique name",
        ),
        (
            "video\tpath\tbox\nw\tb.mp4\t\nv\ta.mp4\t1,1,1\n",
            "row 3, column box: box '1,1,1' must be X0,Y0,X1,Y1 with X1 > X0 and Y1 > Y0: {p}: "
            "fix that cell",
        ),
    ],
)
def test_each_fault_is_said_in_full(tmp_path, text, message):
    path = sheet(tmp_path, text)
    with pytest.raises(UserError) as info:
        read_sample_sheet(path)
    assert str(info.value) == message.format(p=path)


def test_a_missing_sheet_names_it_and_the_config_key(tmp_path):
    with pytest.raises(UserError) as info:
        read_sample_sheet(tmp_path / "nope.tsv")
    assert str(info.value) == (
        f"sample sheet not found: {tmp_path / 'nope.tsv'}: set 'videos' in the config to your TSV"
    )


def test_only_cells_with_spaces_are_warned_about_by_their_line(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="sam2flow.samplesheet")
    path = sheet(tmp_path, "video\tpath\na\ta.mp4\nb\t b.mp4\n")
    assert read_sample_sheet(path).loc["b", "path"] == "b.mp4"
    assert caplog.messages == [f"{path}: row 3, column path: spaces around ' b.mp4' ignored"]


def test_videos_are_found_in_folders_files_and_patterns_once_each(tmp_path):
    folder = tmp_path / "day1"
    folder.mkdir()
    for name in ("b.MP4", "a.avi", "notes.txt", "c.mkv"):
        (folder / name).write_bytes(b"x")
    (folder / "sub.mp4").mkdir()  # a folder named like a video is not one
    lone = tmp_path / "lone.data"
    lone.write_bytes(b"x")  # a file given by name is taken, whatever its suffix
    found = find_videos([folder, str(lone), str(folder / "*.avi"), folder / "c.mkv"])
    assert [p.name for p in found] == ["a.avi", "b.MP4", "c.mkv", "lone.data"]
    assert all(p.is_absolute() for p in found)
    assert [p.name for p in find_videos([str(tmp_path / "day*" / "*")])] == [
        "a.avi",
        "b.MP4",
        "c.mkv",
        "notes.txt",
    ]


def test_a_path_that_matches_nothing_is_named(tmp_path):
    with pytest.raises(UserError) as info:
        find_videos([tmp_path / "none*.mp4"])
    assert (
        str(info.value)
        == f"no such video, folder or pattern: {tmp_path / 'none*.mp4'}: check the path"
    )


def test_a_csv_beats_an_h5_then_filtered_beats_raw_then_newest_wins(tmp_path):
    def made(name, age):
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(path, (1e9 - age, 1e9 - age))
        return path

    old = made("mDLC_r50_a.csv", 100)
    new = made("mDLC_r50_b.csv", 10)
    filtered = made("mDLC_r50_a_filtered.csv", 200)
    h5 = made("mDLC_r50_c.h5", 0)
    upper = made("mDLC_r50_d.CSV", 300)
    other = made("m2DLC_r50_a.csv", 0)
    text = made("mDLC_notes.txt", 0)
    chosen, passed = dlc_match(tmp_path / "m.mp4", [h5, old, text, upper, new, other, filtered])
    assert chosen == filtered
    assert passed == [new, old, upper, h5]


def test_names_are_cleaned_and_numbered(tmp_path):
    taken: set[str] = set()
    names = [video_name(tmp_path / n, taken) for n in ("__.x.mp4", "é.mp4", "a b.mp4", "a_b.mp4")]
    assert names == ["x", "video", "a_b", "a_b_2"]
    assert taken == {"x", "video", "a_b", "a_b_2"}


def test_init_says_which_file_it_chose_and_what_it_left(tmp_path):
    for age, name in enumerate(("aDLC_y.csv", "aDLC_x.csv", "aDLC_x.h5", "zDLC_x.csv")):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (1e9 - age, 1e9 - age))
    files = sorted(tmp_path.glob("*DLC_*"))
    table, notes = sheet_for([tmp_path / "a.mp4", tmp_path / "b.mp4"], files)
    empty = dict.fromkeys(COLUMNS, "")
    assert table.to_dict("records") == [
        empty
        | {"video": "a", "path": str(tmp_path / "a.mp4")}
        | {"prompts": str(tmp_path / "aDLC_y.csv")},
        empty | {"video": "b", "path": str(tmp_path / "b.mp4")},
    ]
    assert notes == [
        "a.mp4: using aDLC_y.csv, not aDLC_x.csv, aDLC_x.h5",
        "b.mp4: no DeepLabCut file named bDLC_*.csv/.h5; its batches stay no_prompt until "
        "you give points, a box or a mask in the sheet",
        "zDLC_x.csv: a DeepLabCut file without a matching video",
    ]


def test_a_video_deeplabcut_drew_for_another_is_left_out_and_said(tmp_path):
    """create_labeled_video writes ``<video>DLC_<scorer>_labeled.mp4`` (maDLC also
    ``..._el_labeled.mp4`` and ``..._full.mp4``) beside the video: a folder of videos holds
    both, and only the video itself is segmented. Without its video, a drawing is kept."""
    scorer = "DLC_resnet50_openfieldOct30shuffle1_15001"
    names = ["m1.mp4", f"m1{scorer}.csv", f"m1{scorer}_labeled.mp4", f"m1{scorer}_el_full.mp4"]
    names += [f"m2{scorer}_labeled.mp4", "m10.mp4"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    videos = find_videos([tmp_path])
    table, notes = sheet_for(videos, sorted(tmp_path.glob("*.csv")))
    assert table["path"].tolist() == [
        str(tmp_path / name) for name in ("m1.mp4", "m10.mp4", f"m2{scorer}_labeled.mp4")
    ]
    assert table["prompts"].tolist() == [str(tmp_path / f"m1{scorer}.csv"), "", ""]
    drawn = [n for n in notes if "a video DeepLabCut drew" in n]
    assert drawn == [
        f"m1{scorer}_el_full.mp4: a video DeepLabCut drew for m1.mp4 (create_labeled_video), "
        "left out; add its row by hand to segment it",
        f"m1{scorer}_labeled.mp4: a video DeepLabCut drew for m1.mp4 (create_labeled_video), "
        "left out; add its row by hand to segment it",
    ]


def test_a_chosen_files_own_h5_twin_is_not_reported_as_passed_over(tmp_path):
    for name in ("aDLC_x.csv", "aDLC_x.h5"):
        (tmp_path / name).write_bytes(b"x")
    table, notes = sheet_for([tmp_path / "a.mp4"], sorted(tmp_path.glob("a*")))
    assert table.loc[0, "prompts"] == str(tmp_path / "aDLC_x.csv") and notes == []


def test_cells_are_text_as_written_numbers_too(tmp_path):
    path = sheet(tmp_path, "video\tpath\tprompt_frame\tpoints\n001\t007.mp4\t05\t1,2\n")
    row = read_sample_sheet(path).loc["001"]
    assert (row["video"], row["path"], row["prompt_frame"]) == ("001", "007.mp4", "05")


def test_a_sheet_that_is_not_utf8_names_the_byte_and_the_fix(tmp_path):
    path = tmp_path / "videos.tsv"
    path.write_bytes(b"video\tpath\nv\t\xff.mp4\n")
    with pytest.raises(UserError) as info:
        read_sample_sheet(path)
    assert str(info.value) == (
        "cannot read the sample sheet ('utf-8' codec can't decode byte 0xff in position 13: "
        f"invalid start byte): {path}: save it as TSV (UTF-8)"
    )


def test_a_bad_cell_whose_parser_does_not_quote_it_is_quoted_with_the_reason(tmp_path):
    path = sheet(tmp_path, "video\tpath\tpoints\nv\ta.mp4\t1,2,1;3\n")
    with pytest.raises(UserError) as info:
        read_sample_sheet(path)
    assert str(info.value) == (
        f"row 2, column points: '1,2,1;3': point '3' must be X,Y or X,Y,LABEL: {path}: "
        "fix that cell"
    )


def test_capitals_and_leading_letters_stay_in_names(tmp_path):
    taken: set[str] = set()
    assert [video_name(tmp_path / n, taken) for n in ("Mouse1.mp4", "Xa.mp4", "-.Z.mp4")] == [
        "Mouse1",
        "Xa",
        "Z",
    ]
