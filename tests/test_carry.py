"""Which batch a batch starts from (``plan.carry``): by carry mode and own prompts."""

import pytest

from sam2flow.errors import BadValue
from sam2flow.plan.carry import CARRY_MODES, carry_source, own_prompt_batches
from sam2flow.prompts import PromptOptions

NAMES = ["0000", "0001", "0002", "0003"]
BATCHES = {"0000": [0, 9], "0001": [10, 19], "0002": [20, 29], "0003": [30, 39]}


@pytest.mark.parametrize(
    ("mode", "own", "sources"),
    [
        ("independent", set(), [None, None, None, None]),
        ("chained", {"0000", "0002"}, [None, "0000", "0001", "0002"]),
        ("auto", {"0000", "0002"}, [None, "0000", None, "0002"]),
        ("auto", set(), [None, "0000", "0001", "0002"]),
        ("auto", set(NAMES), [None, None, None, None]),
    ],
)
def test_each_batch_starts_from_the_one_before_it_unless_it_runs_on_its_own(mode, own, sources):
    assert [carry_source(b, NAMES, mode, own) for b in NAMES] == sources


def test_the_order_is_the_batches_names_not_the_order_they_are_given_in():
    shuffled = ["0002", "0000", "0003", "0001"]
    assert carry_source("0002", shuffled, "chained", set()) == "0001"
    assert carry_source("0000", shuffled, "chained", set()) is None


def test_past_batch_9999_the_order_is_by_number():
    """A day of video at 60 frames/s is ~13,000 batches: ``10000`` follows ``9999``."""
    names = ["9998", "10000", "9999", "10001"]
    assert carry_source("10000", names, "chained", set()) == "9999"
    assert carry_source("9998", names, "chained", set()) is None
    assert carry_source("10001", names, "chained", set()) == "10000"


def test_an_unknown_mode_names_the_known_ones():
    with pytest.raises(BadValue) as info:
        carry_source("0001", NAMES, "serial", set())
    assert str(info.value) == "carry must be one of auto, independent, chained, got 'serial'"
    assert CARRY_MODES == ("auto", "independent", "chained")


@pytest.mark.parametrize(
    ("options", "own"),
    [
        (PromptOptions(), set()),
        (PromptOptions(points="1,2"), set(BATCHES)),  # each batch's own first frame
        (PromptOptions(box="0,0,4,4", prompt_frame=20), {"0002"}),
        (PromptOptions(mask="m.png", prompt_frame=19), {"0001"}),
        (PromptOptions(points="1,2", prompt_frame=10), {"0001"}),  # a batch's first frame
        (PromptOptions(points="1,2", prompt_frame=39), {"0003"}),  # a batch's last frame
        (PromptOptions(points="1,2", prompt_frame=40), set()),  # past every batch
        (PromptOptions(points="1,2", prompt_frame=0), {"0000"}),
    ],
)
def test_a_manual_prompt_belongs_to_the_batch_of_its_frame(options, own):
    assert own_prompt_batches(BATCHES, options) == own


def test_deeplabcut_points_give_own_prompts_where_a_batch_has_usable_points(tmp_path):
    from test_alignment import dlc_file

    dlc = dlc_file(tmp_path / "p.csv", 40, {3: 0.9, 25: 0.9, 35: 0.3}, 1)
    assert own_prompt_batches(BATCHES, PromptOptions(prompts_file=dlc)) == {"0000", "0002"}
    low = PromptOptions(prompts_file=dlc, cutoff=0.2)
    assert own_prompt_batches(BATCHES, low) == {"0000", "0002", "0003"}
    # a DeepLabCut file wins over points given beside it, as in prompt_for_batch
    both = PromptOptions(prompts_file=dlc, points="1,2")
    assert own_prompt_batches(BATCHES, both) == {"0000", "0002"}


@pytest.mark.parametrize(("frame", "own"), [(9, {"0000"}), (10, {"0001"}), (39, {"0003"})])
def test_a_point_on_a_batchs_last_or_first_frame_is_that_batchs(tmp_path, frame, own):
    from test_alignment import dlc_file

    dlc = dlc_file(tmp_path / "p.csv", 40, {frame: 0.9}, 1)
    assert own_prompt_batches(BATCHES, PromptOptions(prompts_file=dlc)) == own
