"""The sample sheet: read once, and a broken one is a one-line error naming it."""

import pytest

from sam2flow.errors import UserError
from sam2flow.samplesheet import read_sample_sheet

from conftest import ROOT


@pytest.mark.parametrize(
    "text, words",
    [
        ("path\tprompts\nv.mp4\t\n", ["lacks column(s) video"]),
        ("video\tprompts\nv\t\n", ["lacks column(s) path"]),
        ("video\tpath\nv\ta.mp4\nv\tb.mp4\n", ["video name 'v' appears more than once"]),
        ("video\tpath\nv\t\n", ["row 2 has an empty video name or path"]),
        ("video\tpath\tpoint\nv\ta.mp4\t1,1\n", ["unknown column(s) point", "points"]),
    ],
)
def test_a_broken_sheet_names_itself_and_the_fault(tmp_path, text, words):
    sheet = tmp_path / "videos.tsv"
    sheet.write_text(text)
    with pytest.raises(UserError) as info:
        read_sample_sheet(sheet)
    message = str(info.value)
    assert str(sheet) in message and "\n" not in message
    assert all(w in message for w in words), message


def test_a_missing_sheet_says_which_config_key_to_set(tmp_path):
    with pytest.raises(UserError, match="sample sheet not found.*'videos'"):
        read_sample_sheet(tmp_path / "nope.tsv")


def test_comments_and_empty_cells_are_read_as_the_user_means():
    sheet = read_sample_sheet(ROOT / "config" / "demo.tsv")
    assert sheet.index.tolist() == ["demo"] and sheet.loc["demo", "points"] == ""
