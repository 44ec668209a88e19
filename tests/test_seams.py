"""Batch seams: a chained batch starts exactly where the previous batch ended."""

import json

import numpy as np
import pytest

from sam2flow.extract import extract_batches
from sam2flow.memory import GuardConfig
from sam2flow.models import ModelOptions
from sam2flow.outputs import load_masks
from sam2flow.prompts import PromptOptions
from sam2flow.segment import segment_folder

from conftest import listed_in_troubleshooting, shared_file

MODEL = ModelOptions(weights="random", image_size=256, device="cpu")
CLICK = dict(points="210,350", prompt_frame=0)  # SAM 2's own reference click on bedroom.mp4


def segment(frames_dir, out, **prompt):
    memory = GuardConfig(adaptive_batch_size=False, monitoring=False)
    return segment_folder(
        frames_dir, out, prompt=PromptOptions(**prompt), model=MODEL, memory=memory
    )


@pytest.fixture(scope="module")
def bedroom_batches(tmp_path_factory):
    """bedroom.mp4 extracted twice: batches of 100 and batches of 50."""
    video = shared_file("bedroom.mp4")
    root = tmp_path_factory.mktemp("bedroom")
    extract_batches(video, root / "by100", batch_size=100)
    extract_batches(video, root / "by50", batch_size=50)
    return root


@pytest.fixture(scope="module")
def first_half(bedroom_batches, tmp_path_factory):
    """The batch of frames 0-49 segmented from the click: the batch a carry starts from."""
    out = tmp_path_factory.mktemp("b0")
    segment(bedroom_batches / "by50" / "0000", out, **CLICK)
    return out


@pytest.fixture(scope="module")
def carried_half(bedroom_batches, first_half, tmp_path_factory):
    """The batch of frames 50-99, carried from ``first_half``: the batch seam."""
    out = tmp_path_factory.mktemp("b1")
    record = segment(
        bedroom_batches / "by50" / "0001", out, carry_from=first_half / "masks.npz", **CLICK
    )
    return out, record


def test_batch_seam_equals_chunk_seam_bit_for_bit(
    bedroom_batches, first_half, carried_half, tmp_path, monkeypatch
):
    root = bedroom_batches
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=60")
    whole = segment(root / "by100" / "0000", tmp_path / "chunked", **CLICK)
    monkeypatch.delenv("SAM2FLOW_INJECT_OOM")
    assert whole["status"] == "recovered"
    assert [a["chunk_size"] for a in whole["attempts"] if a["outcome"] == "ok"] == [50, 50]

    out, second = carried_half
    assert second["prompt_frame"] == 49  # the frame the carried masks belong to
    frames, _, chunked = load_masks(tmp_path / "chunked" / "masks.npz")
    _, _, first = load_masks(first_half / "masks.npz")
    f1, _, second_half = load_masks(out / "masks.npz")
    assert frames.tolist() == list(range(100)) and f1.tolist() == list(range(50, 100))
    assert chunked[:50].any(), "the click segmented nothing: the comparison would be empty"
    np.testing.assert_array_equal(chunked, np.concatenate([first, second_half]))


def test_carry_without_the_previous_frame_names_what_is_missing(
    bedroom_batches, first_half, tmp_path
):
    lone = tmp_path / "lone"
    lone.mkdir()
    for jpg in (bedroom_batches / "by50" / "0001").glob("*.jpg"):
        (lone / jpg.name).symlink_to(jpg)
    from sam2flow.errors import UserError

    with pytest.raises(UserError, match="carry-image"):
        segment(lone, tmp_path / "b1", carry_from=first_half / "masks.npz", **CLICK)
    record = segment(
        lone,
        tmp_path / "b1",
        carry_from=first_half / "masks.npz",
        carry_image=bedroom_batches / "by50" / "0000" / "0000049.jpg",
        **CLICK,
    )
    assert record["prompt_frame"] == 49 and record["status"] == "ok"


def test_a_skipped_last_frame_breaks_the_chain_as_a_recorded_skip(
    bedroom_batches, tmp_path, monkeypatch
):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=10")  # below the 25-frame floor
    first = segment(bedroom_batches / "by50" / "0000", tmp_path / "b0", **CLICK)
    assert first["status"] == "skipped"
    second = segment(
        bedroom_batches / "by50" / "0001",
        tmp_path / "b1",
        carry_from=tmp_path / "b0" / "masks.npz",
        **CLICK,
    )
    assert second["status"] == "skipped"
    assert second["skipped_ranges"] == [[50, 99]]
    assert "last frame 49" in second["skip_reason"]
    listed_in_troubleshooting(second["skip_reason"])
    assert second["frame_status"] == {"no_prompt": 50}
    record = json.loads((tmp_path / "b1" / "memory.json").read_text())
    assert record == second


def test_a_clean_rerun_after_a_history_of_ooms_gives_the_whole_batchs_masks(
    bedroom_batches, first_half, tmp_path, monkeypatch
):
    """The sizing file remembers chunks of 25 from a run that ran out of memory; a later
    run that fits is still one whole batch: stock SAM 2's masks, no seam (before issue 34
    it started in chunks and 19 of 60 frames differed)."""
    memory = GuardConfig(monitoring=False, sizing_file=tmp_path / "sizes.json")
    batch = bedroom_batches / "by50" / "0000"
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=30")
    history = segment_folder(
        batch, tmp_path / "oom", prompt=PromptOptions(**CLICK), model=MODEL, memory=memory
    )
    monkeypatch.delenv("SAM2FLOW_INJECT_OOM")
    assert history["status"] == "recovered"
    assert json.loads((tmp_path / "sizes.json").read_text())  # something is remembered
    clean = segment_folder(
        batch, tmp_path / "clean", prompt=PromptOptions(**CLICK), model=MODEL, memory=memory
    )
    assert [(a["level"], a["chunk_size"]) for a in clean["attempts"]] == [("whole", 50)]
    _, _, whole = load_masks(first_half / "masks.npz")
    _, _, rerun = load_masks(tmp_path / "clean" / "masks.npz")
    assert whole.any() and np.array_equal(rerun, whole)


def test_a_carried_batch_equals_stock_sam2_started_from_the_previous_masks(
    bedroom_batches, first_half, carried_half, tmp_path
):
    """An oracle that shares no sam2flow code with the carry: batch 0001 (frames 50-99),
    carried from batch 0000, against stock SAM 2's own ``init_state`` on frames 49-99 with
    ``add_new_mask`` of frame 49's mask as read with numpy from the first batch's file,
    propagated forward."""
    import torch

    from sam2flow.models import build_model

    out, carried = carried_half
    assert carried["status"] == "ok"
    with np.load(first_half / "masks.npz") as data:
        assert data["frames"][-1] == 49 and data["object_ids"].tolist() == [1]
        h, w = (int(v) for v in data["shape"][-2:])
        last = np.unpackbits(data["masks"][-1, 0], count=h * w).reshape(h, w).astype(bool)
    assert last.any(), "frame 49 holds no mask: the comparison would be empty"
    folder = tmp_path / "stock"
    folder.mkdir()
    for i, frame in enumerate(range(49, 100)):  # sam2's loader numbers frames by name
        source = bedroom_batches / "by50" / f"{frame // 50:04d}" / f"{frame:07d}.jpg"
        (folder / f"{i:05d}.jpg").symlink_to(source)
    predictor = build_model(MODEL).predictor
    with torch.inference_mode():
        state = predictor.init_state(str(folder))
        predictor.add_new_mask(state, 0, 1, torch.from_numpy(last))
        stock = {
            i: (logits[0, 0] > 0).cpu().numpy()
            for i, _, logits in predictor.propagate_in_video(state)
        }
    frames, _, ours = load_masks(out / "masks.npz")
    assert frames.tolist() == list(range(50, 100))
    np.testing.assert_array_equal(ours[:, 0], np.stack([stock[i] for i in range(1, 51)]))
