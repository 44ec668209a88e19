"""The sample sheet: read once, and a broken one is a one-line error naming it."""

import pytest

from sam2flow.errors import UserError
from sam2flow.samplesheet import read_sample_sheet

from conftest import ROOT, listed_in_troubleshooting


@pytest.mark.parametrize(
    "text, words",
    [
        ("path\tprompts\nv.mp4\t\n", ["lacks column(s) video"]),
        ("video\tprompts\nv\t\n", ["lacks column(s) path"]),
        ("video\tpath\nv\ta.mp4\nv\tb.mp4\n", ["video name 'v' appears more than once"]),
        ("video\tpath\nv\t\n", ["row 2 has an empty video name or path"]),
        ("video\tpath\tpoint\nv\ta.mp4\t1,1\n", ["unknown column(s) point", "points"]),
        ("video\tpath\tpoints\n", ["lists no videos", "sam2flow init"]),
        ("video\tpath\n# mouse1\tm1.mp4\n", ["lists no videos"]),
        ("video\tpath\tpoints\nv\ta.mp4\t.,.\n", ["row 2, column points: point '.,.' must be X,Y"]),
        ("video\tpath\tpoints\nv\ta.mp4\t1,2,1;3\n", ["row 2, column points", "'3'"]),
        ("video\tpath\tbox\nv\ta.mp4\t30,10,20,40\n", ["row 2, column box", "X1 > X0"]),
        ("video\tpath\tbox\nw\tb.mp4\t\nv\ta.mp4\t.,1,2,3\n", ["row 3, column box: box '.,1,2,3'"]),
        ("video\tpath\n   \t  \n", ["row 2 has an empty video name or path"]),
        (b"video\tpath\nv\t\xff.mp4\n", ["cannot read the sample sheet", "UTF-8"]),
        ("video\tpath\nv\ta.mp4\t1,2\n", ["row 2 has 3 cells but the header line names 2"]),
        ("video\tpath\t\nv\ta.mp4\t\t3\n", ["row 2 has 4 cells but the header line names 2"]),
        (
            "video\tpath\tprompts\tbox\tmask\nv\ta.mp4\t\t1,1,5,5\t\nw\tb.mp4\td.csv\t\tm.png\n",
            [
                "row 3 has a DeepLabCut file (prompts) and mask: ",
                ": keep one: the DeepLabCut "
                "file prompts every batch; points, box and mask prompt the batch of prompt_frame",
            ],
        ),
        (
            "video\tpath\tprompts\tpoints\tprompt_frame\nv\ta.mp4\td.csv\t1,2\t3\n",
            ["row 2 has a DeepLabCut file (prompts) and points, prompt_frame: "],
        ),
    ],
)
def test_a_broken_sheet_names_itself_and_the_fault(tmp_path, text, words):
    sheet = tmp_path / "videos.tsv"
    sheet.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UserError) as info:
        read_sample_sheet(sheet)
    message = str(info.value)
    assert str(sheet) in message and "\n" not in message
    listed_in_troubleshooting(message)
    assert all(w in message for w in words), message


def test_a_missing_sheet_says_which_config_key_to_set(tmp_path):
    with pytest.raises(UserError, match="sample sheet not found.*'videos'"):
        read_sample_sheet(tmp_path / "nope.tsv")


def test_comments_and_empty_cells_are_read_as_the_user_means():
    sheet = read_sample_sheet(ROOT / "config" / "demo.tsv")
    assert sheet.index.tolist() == ["demo"] and sheet.loc["demo", "points"] == ""


def test_a_hash_inside_a_path_is_the_paths_and_a_comment_is_a_whole_line(tmp_path):
    """``sam2flow init`` writes paths as they are: ``mouse#1.mp4`` is a path, not a path
    cut at a comment."""
    sheet = tmp_path / "videos.tsv"
    sheet.write_text("video\tpath\n# a comment line\nm1\t/data/mouse#1.mp4\n  # indented\n")
    assert read_sample_sheet(sheet)["path"].tolist() == ["/data/mouse#1.mp4"]


def test_spaces_around_a_cell_are_ignored_with_a_warning_naming_it(tmp_path, caplog):
    sheet = tmp_path / "videos.tsv"
    sheet.write_text("video\tpath\tpoints\n m1 \t/data/m1.mp4 \t 40,60\n")
    table = read_sample_sheet(sheet)
    assert table.loc["m1", ["path", "points"]].tolist() == ["/data/m1.mp4", "40,60"]
    assert f"{sheet}: row 2, column path: spaces around '/data/m1.mp4 ' ignored" in caplog.messages
    assert len(caplog.messages) == 3
    listed_in_troubleshooting(caplog.messages[0])


def test_a_cell_reading_na_or_null_is_text_not_missing(tmp_path):
    sheet = tmp_path / "videos.tsv"
    sheet.write_text("video\tpath\nNA\tnull.mp4\n")
    assert read_sample_sheet(sheet)[["video", "path"]].values.tolist() == [["NA", "null.mp4"]]


def test_a_deeplabcut_file_is_matched_by_the_whole_video_name_not_a_prefix(tmp_path):
    from sam2flow.samplesheet import sheet_for

    files = [tmp_path / "video10DLC_resnet50_x_1.csv", tmp_path / "video1DLC_resnet50_x_1.csv"]
    for f in files:
        f.touch()
    videos = [tmp_path / "video1.mp4", tmp_path / "video10.mp4", tmp_path / "video2.mp4"]
    table, _ = sheet_for(videos, files)
    assert table["prompts"].tolist() == [str(files[1]), str(files[0]), ""]


def test_names_that_collide_after_cleaning_are_numbered_past_every_name_taken(tmp_path):
    from sam2flow.samplesheet import sheet_for

    videos = [tmp_path / "a" / "video.mp4", tmp_path / "video_2.mp4", tmp_path / "b" / "video.mp4"]
    videos.append(tmp_path / "c" / "vid eo.mp4")
    videos.append(tmp_path / "d" / "vid#eo.mp4")
    table, _ = sheet_for(videos, [])
    assert table["video"].tolist() == ["video", "video_2", "video_3", "vid_eo", "vid_eo_2"]


def test_rows_are_named_by_their_line_in_the_file_past_comments_and_empty_lines(tmp_path, caplog):
    sheet = tmp_path / "videos.tsv"
    head = "# my mice\n\nvideo\tpath\tbox\n\n# first the good one\nm1\t m1.mp4\t\n"
    sheet.write_text(head + "m2\tm2.mp4\t9,9,1,1\n")
    with pytest.raises(UserError, match=r"^row 7, column box: "):
        read_sample_sheet(sheet)
    assert caplog.messages == [f"{sheet}: row 6, column path: spaces around ' m1.mp4' ignored"]
    sheet.write_text(head + "m2\t\t\n")
    with pytest.raises(UserError, match=r"^row 7 has an empty video name or path"):
        read_sample_sheet(sheet)
    sheet.write_text(head + "m2\tm2.mp4\t\tx\n")
    with pytest.raises(UserError) as info:
        read_sample_sheet(sheet)
    assert str(info.value) == (
        f"row 7 has 4 cells but the header line names 3 columns: {sheet}: "
        "remove the extra cells, or name their column in the header line"
    )


@pytest.mark.parametrize(
    "text",
    [
        "video\tpath\nm1\tm1.mp4\t\n",  # a tab left at a row's end
        "video\tpath\t\nm1\tm1.mp4\n",  # and at the header's
        "video\tpath\t\t\nm1\tm1.mp4\t\t \n",
        "\ufeffvideo\tpath\r\nm1\tm1.mp4\r\n",  # saved by Excel on Windows (BOM, CRLF)
    ],
)
def test_a_sheet_saved_by_a_spreadsheet_reads_as_its_cells_say(tmp_path, text):
    sheet = tmp_path / "videos.tsv"
    sheet.write_text(text, encoding="utf-8")
    table = read_sample_sheet(sheet)
    assert table[["video", "path", "prompts"]].values.tolist() == [["m1", "m1.mp4", ""]]


@pytest.mark.parametrize(
    "row, words",
    [
        # a space: not a path segment
        (
            "mouse 1\tm1.mp4\t",
            "row 4, column video: 'mouse 1' is not a name for the result folders, of letters, "
            "digits, _ . - (a letter or digit first)",
        ),
        (
            "m1\tm1.mp4\tfirst",
            "row 4, column prompt_frame: 'first' is not the video's frame number of points / "
            "box / mask (empty for frame 0)",
        ),
    ],
)
def test_a_row_the_workflows_schema_refuses_is_named_by_its_line(tmp_path, row, words):
    sheet = tmp_path / "videos.tsv"
    sheet.write_text(f"video\tpath\tprompt_frame\n# the mice\n\n{row}\n")
    schema = ROOT / "workflow" / "schemas" / "videos.schema.yaml"
    assert read_sample_sheet(sheet).index.tolist() == [row.split("\t")[0]]  # init's reading
    with pytest.raises(UserError) as info:
        read_sample_sheet(sheet, schema)
    assert str(info.value) == f"{words}: {sheet}: fix that cell"
    listed_in_troubleshooting(str(info.value))
