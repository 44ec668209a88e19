"""A batch's slots before they are written: what ``MaskStore`` keeps of SAM 2's logits for
each frame and object, and the slot checks that make a bookkeeping bug fail loudly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2flow.outputs import COLUMNS, MaskStore, check_slots, mask_scores


def logits_with(boxes, height=12, width=16, inside=2.0):
    """Logits (objects x 1 x H x W): ``inside`` in each object's box, -5 elsewhere."""
    out = torch.full((len(boxes), 1, height, width), -5.0)
    for k, box in enumerate(boxes):
        if box is not None:
            x0, y0, x1, y1 = box
            out[k, 0, y0 : y1 + 1, x0 : x1 + 1] = inside
    return out


@pytest.fixture
def store():
    s = MaskStore([10, 11, 12], [3, 7], 12, 16)
    yield s
    s.flush()


def test_each_frames_mask_is_where_its_logits_are_positive(store):
    logits = logits_with([(2, 1, 5, 3), (0, 0, 15, 11)])
    store.put(11, logits)
    for k in range(2):
        assert np.array_equal(store.mask(11, k), (logits[k, 0] > 0).numpy())
    assert not store.mask(10, 0).any()  # another frame's slot is untouched


def test_area_centroid_box_and_score_of_an_object(store):
    logits = logits_with([(2, 1, 5, 4), None], inside=1.0)
    logits[0, 0, 4, 4] = 2.0  # the one pixel of the box on the score's grid
    store.put(10, logits)
    row = store.table().iloc[0]
    assert (row["frame"], row["object"], row["status"]) == (10, 3, "ok")
    assert [row[c] for c in ["area", "cx", "cy", "x0", "y0", "x1", "y1"]] == [
        16, 3.5, 2.5, 2, 1, 5, 4
    ]  # fmt: skip
    # the score reads every 4th pixel of the logits, in rows and columns: only (4, 4) here
    assert row["score"] == pytest.approx(1 / (1 + np.exp(-2.0)))


def test_an_object_without_pixels_is_empty_with_area_0_and_no_box(store):
    store.put(10, logits_with([(2, 1, 5, 3), None]))
    row = store.table().iloc[1]
    assert (row["object"], row["status"], row["area"], row["score"]) == (7, "empty", 0, 0)
    assert np.isnan([row[c] for c in ["cx", "cy", "x0", "y0", "x1", "y1"]]).all()
    assert not store.mask(10, 1).any()


def test_marked_frames_keep_their_slot_with_an_empty_mask_and_their_status(store):
    store.put(12, logits_with([(0, 0, 3, 3), (4, 4, 6, 6)]))
    store.mark([12], "skipped_oom")
    assert not store.mask(12, 0).any() and not store.mask(12, 1).any()
    rows = store.table().query("frame == 12")
    assert rows["status"].tolist() == ["skipped_oom"] * 2 and rows["area"].isna().all()


def test_the_table_has_a_row_per_frame_and_object_in_order(store):
    for frame in (10, 11, 12):
        store.put(frame, logits_with([(0, 0, frame - 10, 0), None]))
    table = store.table()
    assert table.columns.tolist() == COLUMNS
    assert table[["frame", "object"]].values.tolist() == [
        [10, 3], [10, 7], [11, 3], [11, 7], [12, 3], [12, 7]
    ]  # fmt: skip
    assert table["area"].tolist() == [1, 0, 2, 0, 3, 0]
    assert store.status_counts() == {"ok": 3, "empty": 3}


def test_status_counts_include_slots_not_yet_filled(store):
    store.put(10, logits_with([None, None]))
    assert store.status_counts() == {"": 4, "empty": 2}


def test_the_score_is_the_mean_probability_inside_the_mask():
    logits = np.array([[[2.0, 0.0], [-1.0, 4.0]], [[-1.0, -1.0], [-1.0, -1.0]]], np.float32)
    inside = 1 / (1 + np.exp(-np.array([2.0, 4.0])))
    assert mask_scores(logits) == pytest.approx([inside.mean(), 0.0])


def test_each_objects_score_is_over_its_own_mask():
    """Two objects of 1 and 3 pixels: each mean is over its own pixels, not all objects'."""
    logits = np.full((2, 2, 2), -1.0, np.float32)
    logits[0, 0, 0] = 2.0
    logits[1, 1, :] = 4.0
    logits[1, 0, 0] = 4.0
    assert mask_scores(logits) == pytest.approx([1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(-4.0))])


def test_masks_of_frames_whose_pixels_are_not_a_multiple_of_8_come_back_whole():
    """5 x 7 = 35 pixels pack into 5 bytes with 5 bits of padding, which are not pixels."""
    store = MaskStore([0], [1], 5, 7)
    logits = torch.full((1, 1, 5, 7), -5.0)
    logits[0, 0, 4, 2:] = 5.0  # the last row, up to the last pixel
    store.put(0, logits)
    assert np.array_equal(store.mask(0, 0), (logits[0, 0] > 0).numpy())


@pytest.mark.parametrize(
    "frames, status, message",
    [
        ([4, 6, 6, 7], [["ok"]] * 4, r"frames not strictly increasing at \[6\]"),
        ([4, 3], [["ok"]] * 2, r"frames not strictly increasing at \[3\]"),
        ([4] * 13, [["ok"]] * 13, r"strictly increasing at \[4, 4, 4, 4, 4, 4, 4, 4, 4, 4\]$"),
        ([4, 5], [["ok"]] * 3, "3 status rows for 2 frames"),
        ([4, 5, 6], [["ok", "ok"], ["ok", ""], ["x", "ok"]], r"known status: \[5, 6\]$"),
        (list(range(12)), [[""]] * 12, r"known status: \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\]$"),
    ],
)
def test_slots_out_of_order_missing_or_unfilled_fail_loudly(frames, status, message):
    with pytest.raises(RuntimeError, match=message):
        check_slots(np.array(frames), np.array(status, dtype=object))


def test_every_known_status_passes_the_slot_check():
    check_slots(
        np.array([0, 1, 2, 3]), np.array([["ok"], ["skipped_oom"], ["no_prompt"], ["empty"]])
    )


def test_a_logit_of_zero_is_outside_and_any_positive_one_inside(store):
    """SAM 2's threshold: a pixel is in the mask where its logit is above 0."""
    logits = torch.full((2, 1, 12, 16), -5.0)
    logits[0, 0, 0, :4] = torch.tensor([0.0, 0.25, 1.0, -0.5])
    logits[1, 0, :, :] = 0.5
    store.put(10, logits)
    assert store.mask(10, 0)[0, :4].tolist() == [False, True, True, False]
    assert store.mask(10, 1).all()
    row = store.table().iloc[1]  # every 4th pixel reads 0.5: the score is its sigmoid
    assert row["score"] == pytest.approx(1 / (1 + np.exp(-0.5)))


def test_masks_are_kept_in_an_unnamed_file_and_streamed_out_in_pieces(tmp_path):
    """Nothing named is left in the spill folder; the .npy written a few bytes at a time
    holds every slot, an empty mask put over a full one and a marked frame included."""
    import io

    spill = tmp_path / "spill"
    spill.mkdir()
    store = MaskStore([10, 11, 12], [3, 7], 12, 16, spill_dir=spill)
    store.put(10, logits_with([(2, 1, 5, 3), (0, 0, 15, 11)]))
    store.put(11, logits_with([(0, 0, 15, 11), (1, 1, 2, 2)]))
    store.put(11, logits_with([None, (1, 1, 2, 2)]))  # done again: the first is gone
    store.put(12, logits_with([(0, 0, 3, 3), (0, 0, 3, 3)]))
    store.mark([12], "skipped_oom")
    assert list(spill.iterdir()) == []
    expected = np.zeros((3, 2, 12, 16), dtype=bool)
    expected[0, 0, 1:4, 2:6] = expected[0, 1] = True
    expected[1, 1, 1:3, 1:3] = True
    for chunk in (1, 7, 1 << 20):
        out = io.BytesIO()
        store.write_masks(out, chunk_bytes=chunk)
        packed = np.lib.format.read_array(io.BytesIO(out.getvalue()))
        assert packed.shape == (3, 2, 24)
        masks = np.unpackbits(packed, axis=-1, count=12 * 16).reshape(3, 2, 12, 16)
        assert np.array_equal(masks.astype(bool), expected)
    assert np.array_equal(store.packed, packed)


def test_a_mask_is_stored_in_the_callers_thread_when_no_thread_can_start(store, monkeypatch):
    """Near the host's memory limit, starting the store's thread can fail: the frame is
    stored where it is, not lost."""

    def no_thread(*args, **kwargs):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(store._pool, "submit", no_thread)
    logits = logits_with([(2, 1, 5, 3), (0, 0, 15, 11)])
    store.put(12, logits)
    assert np.array_equal(store.mask(12, 1), (logits[1, 0] > 0).numpy())
    assert store.status[2].tolist() != ["", ""]
