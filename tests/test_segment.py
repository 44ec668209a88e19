"""SAM 2 over a batch: the real model (random weights, image size 256, CPU)."""

import json

import numpy as np
import pandas as pd

from sam2flow.extract import extract_batches
from sam2flow.memory import GuardConfig, MemoryGuard
from sam2flow.outputs import load_masks
from sam2flow.prompts import manual_prompt
from sam2flow.segment import BatchJob, frame_ranges, prune_outputs, segment_batch

from conftest import shared_file


def run(frames_dir, out, model, prompt, **guard_options):
    guard = MemoryGuard(GuardConfig(adaptive_batch_size=False, **guard_options), model.device)
    return segment_batch(BatchJob(frames_dir, out, prompt, "disc", "0000"), model, guard)


def outputs(out):
    frames, objects, masks = load_masks(out / "masks.npz")
    table = pd.read_csv(out / "frames.csv")
    record = json.loads((out / "memory.json").read_text())
    return frames, objects, masks, table, record


def test_every_frame_gets_a_slot_with_global_indices(tmp_path, synthetic_video, tiny_model):
    extract_batches(synthetic_video, tmp_path / "frames", batch_size=40)
    batch = tmp_path / "frames" / "0001"  # frames 40-59
    run(batch, tmp_path / "out", tiny_model, manual_prompt(45, "60,60"))
    frames, objects, masks, table, record = outputs(tmp_path / "out")
    assert frames.tolist() == list(range(40, 60))
    assert objects.tolist() == [1] and masks.shape == (20, 1, 120, 160)
    assert table["frame"].tolist() == list(range(40, 60))
    assert set(table["status"]) <= {"ok", "empty"}
    assert record["status"] == "ok" and record["prompt_frame"] == 45
    assert (record["first_frame"], record["last_frame"]) == (40, 59)
    assert record["weights"] == "random" and "RANDOM WEIGHTS" in record["warning"]


def test_backward_propagation_covers_frames_before_the_prompt(
    tmp_path, synthetic_frames, tiny_model
):
    run(synthetic_frames, tmp_path / "out", tiny_model, manual_prompt(30, "80,60"))
    _, _, _, table, record = outputs(tmp_path / "out")
    assert len(table) == 60 and table["frame"].tolist() == list(range(60))
    assert (table["status"] != "skipped_oom").all()
    assert record["attempts"][0]["frame_ranges"] == [[0, 59]]


def test_chunks_carry_the_exact_mask_over_the_overlap_frame(
    tmp_path, synthetic_frames, tiny_model, monkeypatch
):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=30")
    handed = []
    real_add_mask = tiny_model.predictor.add_new_mask

    def spy(state, frame_idx, obj_id, mask):
        handed.append((frame_idx, mask.numpy().copy()))
        return real_add_mask(state, frame_idx, obj_id, mask)

    monkeypatch.setattr(tiny_model.predictor, "add_new_mask", spy)
    run(synthetic_frames, tmp_path / "out", tiny_model, manual_prompt(0, "40,60"))
    frames, _, masks, table, record = outputs(tmp_path / "out")
    assert record["status"] == "recovered"
    assert [(a["first_frame"], a["last_frame"], a["outcome"]) for a in record["attempts"]] == [
        (0, 59, "oom"),
        (0, 29, "ok"),
        (30, 59, "ok"),
    ]
    # Chunk 2 starts on frame 29 (local 0 of its state) from chunk 1's mask on frame 29.
    assert len(handed) == 1 and handed[0][0] == 0
    np.testing.assert_array_equal(handed[0][1], masks[29, 0])
    assert (table["status"] != "skipped_oom").all() and len(table) == 60


def test_skipped_batch_keeps_all_slots_as_skipped_oom(
    tmp_path, synthetic_frames, tiny_model, monkeypatch
):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=5")
    run(synthetic_frames, tmp_path / "out", tiny_model, manual_prompt(0, "40,60"))
    frames, _, masks, table, record = outputs(tmp_path / "out")
    assert record["status"] == "skipped"
    assert frames.tolist() == list(range(60)) and not masks.any()
    assert (table["status"] == "skipped_oom").all() and len(table) == 60
    assert record["skipped_ranges"] == [[0, 29], [30, 59]]  # failed; nothing to continue from
    assert len(record["skip_reasons"]) == 2
    assert record["frame_status"] == {"skipped_oom": 60}


def test_batch_without_a_prompt_is_no_prompt_not_a_crash(tmp_path, synthetic_frames, tiny_model):
    run(synthetic_frames, tmp_path / "out", tiny_model, None)
    _, _, _, table, record = outputs(tmp_path / "out")
    assert (table["status"] == "no_prompt").all() and len(table) == 60
    assert record["frame_status"] == {"no_prompt": 60}


def test_bedroom_frames_with_the_reference_click(tmp_path, tiny_model):
    video = shared_file("bedroom.mp4")
    extract_batches(video, tmp_path / "frames", batch_size=50)
    batch = tmp_path / "frames" / "0001"
    run(batch, tmp_path / "out", tiny_model, manual_prompt(50, "210,350"))
    frames, _, masks, table, record = outputs(tmp_path / "out")
    assert frames.tolist() == list(range(50, 100))
    assert masks.shape == (50, 1, 540, 960)
    assert record["frame_status"].get("ok", 0) + record["frame_status"].get("empty", 0) == 50


def test_pruning_keeps_the_window_and_the_prompt_neighbourhood():
    outs = {k: {} for k in range(100)}
    state = {"output_dict_per_obj": {0: {"non_cond_frame_outputs": dict(outs)}}}
    prune_outputs(state, frame=80, reverse=False, window=16, keep_near=0)
    kept = sorted(state["output_dict_per_obj"][0]["non_cond_frame_outputs"])
    assert kept == list(range(0, 17)) + list(range(64, 100))


def test_frame_ranges():
    assert frame_ranges([3, 1, 2, 7]) == [[1, 3], [7, 7]]
