"""Grouping: which batches share a cluster job, in what order they run there, and which is
the last (where the group's worker ends), checked against the groups written out."""

import pytest

from sam2flow.plan.grouping import group_id, group_last, group_name, group_predecessor


def names(count: int) -> list[str]:
    return [f"{i:04d}" for i in range(count)]


@pytest.mark.parametrize("count", [1, 2, 5, 7, 12])
@pytest.mark.parametrize("size", [2, 3, 5])
def test_groups_are_runs_of_size_batches_chained_in_order(count, size):
    batches = names(count)
    groups = [batches[i : i + size] for i in range(0, count, size)]  # the last may be short
    for group in groups:
        assert [group_name(b, batches, size) for b in group] == [group[0]] * len(group)
        assert [group_predecessor(b, batches, size) for b in group] == [None, *group[:-1]]
        assert [group_last(b, batches, size) for b in group] == [False] * (len(group) - 1) + [True]


@pytest.mark.parametrize("size", [0, 1])
def test_batches_not_grouped_have_no_group_predecessor_or_last(size):
    batches = names(4)
    for batch in batches:
        assert group_name(batch, batches, size) is None
        assert group_predecessor(batch, batches, size) is None
        assert group_last(batch, batches, size) is False


def test_a_group_is_named_by_video_and_first_batch():
    assert group_id("mouse1", "0003") == "segment_mouse1_0003"


def test_names_need_not_be_consecutive_numbers():
    """A video's batch names are whatever its extraction listed, in order."""
    batches = ["0000", "0002", "0010"]
    assert [group_name(b, batches, 2) for b in batches] == ["0000", "0000", "0010"]
    assert [group_predecessor(b, batches, 2) for b in batches] == [None, "0000", None]
    assert [group_last(b, batches, 2) for b in batches] == [False, True, True]
