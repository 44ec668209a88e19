"""The summary's tables, from batch records."""

from sam2flow.report import skipped_table


def test_each_skipped_range_is_a_row_with_its_own_reason():
    record = {
        "video": "v",
        "batch": "0000",
        "skipped_ranges": [[120, 129], [130, 139]],
        "skip_reason": "out of memory",
        "skip_reasons": ["out of memory", "no mask to continue from"],
    }
    table = skipped_table([record])
    assert table[["first_frame", "last_frame", "frames"]].values.tolist() == [
        [120, 129, 10],
        [130, 139, 10],
    ]
    assert table["reason"].tolist() == ["out of memory", "no mask to continue from"]


def test_a_record_from_before_skip_reasons_lists_its_one_reason():
    record = {"video": "v", "batch": "0000", "skipped_ranges": [[0, 9]], "skip_reason": "oom"}
    assert skipped_table([record])["reason"].tolist() == ["oom"]
