"""segment.py's own parts, with a stand-in predictor (no model): what a batch's record holds,
what it logs, the host-memory check, failing on a skip, the options init_state gets, and
the helpers that decide SAM 2's memory window and whether a prompt reaches a batch."""

from __future__ import annotations

import json
import logging
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_alignment import SIZE, IndexPredictor, blocks, index_of

from sam2flow.errors import UserError
from sam2flow.frame_folders import MANIFEST, Extraction, frame_file
from sam2flow.memory import GuardConfig
from sam2flow.models import RANDOM_WEIGHTS_WARNING, LoadedModel
from sam2flow.prompts import BatchPrompt, PromptOptions
from sam2flow.segment import (
    BatchJob,
    BatchSkipped,
    lazy_frames,
    memory_window,
    peak_rss_bytes,
    prompt_reaches,
    segment_batch,
    segment_folder,
)

FRAMES = range(40, 80)
QUIET = dict(adaptive_batch_size=False, monitoring=False)


class RecordingPredictor(IndexPredictor):
    """The alignment stand-in, also noting the options of each ``init_state``, what each
    state holds and uses, devices it is moved to, and the most non-conditioning outputs a
    state held while propagating."""

    def __init__(self, prompt_frames):
        super().__init__(prompt_frames)
        self.options, self.states, self.moved, self.most_held = [], [], [], 0
        self.prompted = []  # (frame seen, object, points, labels, box, mask)

    def to(self, device):
        self.moved.append(device)
        return self

    def init_state(self, video_path, offload_video_to_cpu=False, offload_state_to_cpu=False):
        self.options.append((offload_video_to_cpu, offload_state_to_cpu))
        state = super().init_state(video_path, offload_video_to_cpu, offload_state_to_cpu)
        self.states.append(dict(held=len(state["images"]), used=set(), first=state["images"][0]))
        return state

    def add_new_points_or_box(self, state, frame_idx, obj_id, points=None, labels=None, box=None):
        self.states[-1]["used"].add(frame_idx)
        seen = index_of(state["images"][frame_idx])
        self.prompted.append((seen, obj_id, points, labels, box, None))
        return super().add_new_points_or_box(state, frame_idx, obj_id, points, labels, box)

    def add_new_mask(self, state, frame_idx, obj_id, mask):
        self.states[-1]["used"].add(frame_idx)
        seen = index_of(state["images"][frame_idx])
        self.prompted.append((seen, obj_id, None, None, None, mask.numpy().copy()))
        return super().add_new_mask(state, frame_idx, obj_id, mask)

    def propagate_in_video(self, state, start_frame_idx, max_frame_num_to_track, reverse=False):
        for out in super().propagate_in_video(
            state, start_frame_idx, max_frame_num_to_track, reverse
        ):
            self.states[-1]["used"].add(out[0])
            held = [len(o["non_cond_frame_outputs"]) for o in state["output_dict_per_obj"].values()]
            self.most_held = max(self.most_held, *held)
            yield out


@pytest.fixture
def batch(tmp_path):
    """Frames 40-79, each showing its index: batch 0001 of a 120-frame extraction."""
    root = tmp_path / "frames"
    (root / "0001").mkdir(parents=True)
    for f in FRAMES:
        image = np.repeat(blocks(f)[:, :, None], 3, axis=2).astype(np.uint8) * 255
        cv2.imwrite(str(root / "0001" / frame_file(f)), image)
    batches = {"0000": [0, 39], "0001": [40, 79], "0002": [80, 119]}
    manifest = Extraction("v.mp4", 120, SIZE, SIZE, 30.0, 40, 95, batches)
    (root / MANIFEST).write_text(manifest.to_json())
    return root / "0001"


def stand_in(prompt_frames=(42,)) -> LoadedModel:
    predictor = RecordingPredictor(set(prompt_frames))
    return LoadedModel(predictor, "stand-in", "random", SIZE, torch.device("cpu"), None)


def segment(batch, out, model=None, prompt_frame=42, prompt=None, **options):
    memory = options.pop("memory", GuardConfig(**QUIET))
    return segment_folder(
        batch,
        out,
        prompt=PromptOptions(**{**(prompt or {"points": "16,16"}), "prompt_frame": prompt_frame}),
        model=model or stand_in(),
        memory=memory,
        video="v",
        batch="0001",
        **options,
    )


def test_a_record_names_its_batch_model_and_speed(batch, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sam2flow.segment")
    record = segment(batch, tmp_path / "out", record_extra={"rerun_strategy": "offload"})
    assert (record["video"], record["batch"]) == ("v", "0001")
    assert (record["first_frame"], record["last_frame"], record["objects"]) == (40, 79, [1])
    assert (record["model"], record["weights"], record["image_size"]) == (
        "stand-in",
        "random",
        SIZE,
    )
    assert record["warning"] == RANDOM_WEIGHTS_WARNING and record["rerun_strategy"] == "offload"
    assert record["prompt_frame"] == 42 and record["frame_status"] == {"ok": 40}
    assert record["frames_per_second"] == pytest.approx(40 / record["seconds"], rel=0.01)
    assert 0 < record["host_peak_rss_bytes"] <= peak_rss_bytes()
    assert record["host_peak_rss_bytes"] > 10 * 2**20  # bytes, not KiB: torch alone is more
    assert "host memory given to this job: mem_mb=None" in caplog.messages
    said = [m for m in caplog.messages if m.startswith("batch 0001: ok, 40 frames in ")]
    assert len(said) == 1 and said[0].endswith(" frames/s)")


def test_a_record_of_trained_weights_carries_no_warning(batch, tmp_path):
    model = stand_in()
    model = LoadedModel(
        model.predictor, "stand-in", "sam2.1_hiera_tiny.pt", SIZE, model.device, None
    )
    assert "warning" not in segment(batch, tmp_path / "out", model=model)


def test_a_batch_without_a_prompt_says_which_frames_it_left(batch, tmp_path, caplog):
    record = segment(batch, tmp_path / "out", prompt_frame=5)  # on another batch
    assert record["frame_status"] == {"no_prompt": 40} and record["status"] == "ok"
    assert "batch 0001: no usable prompt in frames 40-79" in caplog.messages


def test_too_little_host_memory_fails_before_any_work(batch, tmp_path):
    model = stand_in()
    with pytest.raises(MemoryError) as err:
        segment(batch, tmp_path / "out", model=model, mem_mb=1)
    assert str(err.value).startswith("batch 0001 needs about ")
    assert "was given mem_mb=1;" in str(err.value)
    assert model.predictor.options == [] and not (tmp_path / "out").exists()
    segment(batch, tmp_path / "out", model=model, mem_mb=64_000)  # enough: runs
    assert (tmp_path / "out" / "memory.json").is_file()


def test_a_skipped_batch_fails_its_job_only_when_asked_and_after_writing(
    batch, tmp_path, monkeypatch
):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "frames=64-65")
    memory = GuardConfig(min_chunk=2, **QUIET)
    record = segment(batch, tmp_path / "kept", memory=memory)
    assert record["status"] == "skipped"
    with pytest.raises(BatchSkipped) as err:
        segment(batch, tmp_path / "failed", memory=memory, fail_on_skip=True)
    ranges = ", ".join(f"{a}-{b}" for a, b in record["skipped_ranges"])
    assert str(err.value) == (
        f"batch 0001 skipped frames {ranges} ({record['skip_reason']}): "
        f"{tmp_path / 'failed' / 'memory.json'}: failing the job (memory.fail_on_skip) so "
        "that its retry asks for more"
    )
    assert isinstance(err.value, UserError)
    assert (tmp_path / "failed" / "memory.json").is_file()


def test_cpu_offload_reaches_init_state(batch, tmp_path):
    model = stand_in()
    segment(
        batch, tmp_path / "out", model=model, memory=GuardConfig(force_cpu_offload=True, **QUIET)
    )
    assert model.predictor.options and all(o == (False, True) for o in model.predictor.options)
    model = stand_in()
    segment(batch, tmp_path / "plain", model=model)
    assert all(o == (False, False) for o in model.predictor.options)


def test_a_short_extraction_warns_in_the_record(batch, tmp_path):
    manifest = batch.parent / MANIFEST
    data = json.loads(manifest.read_text()) | {"declared_frames": 130}
    manifest.write_text(json.dumps(data))
    record = segment(batch, tmp_path / "out", record_extra={"rerun_strategy": "same"})
    assert (
        record["video_warning"] == Extraction(**data).shortfall()
        and record["rerun_strategy"] == "same"
    )
    assert record["video_warning"].startswith("v.mp4: 120 frames decoded but")


def test_a_progress_bar_counts_the_batchs_frames_when_asked(batch, tmp_path, capsys):
    segment(batch, tmp_path / "quiet")
    assert "batch 0001" not in capsys.readouterr().err
    segment(batch, tmp_path / "out", progress=True)
    err = capsys.readouterr().err
    assert "batch 0001" in err and "40/40" in err and "frame/s]" in err


def test_the_memory_window_is_the_longest_look_back():
    def predictor(**kw):
        base = dict(num_maskmem=7, memory_temporal_stride_for_eval=1)
        return types.SimpleNamespace(**(base | kw))

    assert memory_window(predictor()) == 7
    assert memory_window(predictor(memory_temporal_stride_for_eval=2)) == 14
    assert memory_window(predictor(memory_temporal_stride_for_eval=0)) == 7
    assert memory_window(types.SimpleNamespace(num_maskmem=7)) == 7
    pointers = dict(use_obj_ptrs_in_encoder=True, max_obj_ptrs_in_encoder=16)
    assert memory_window(predictor(**pointers)) == 16
    assert memory_window(predictor(**pointers, memory_temporal_stride_for_eval=3)) == 21
    assert memory_window(predictor(use_obj_ptrs_in_encoder=False, max_obj_ptrs_in_encoder=16)) == 7


def test_a_prompt_reaches_its_own_frames_or_is_carried_onto_the_frame_before():
    on = BatchPrompt(frame=42, objects={})
    assert prompt_reaches(on, list(FRAMES)) and not prompt_reaches(on, [80, 81])
    carried = BatchPrompt(frame=39, objects={}, image="0000039.jpg")
    assert prompt_reaches(carried, list(FRAMES))
    assert not prompt_reaches(carried, [41, 42])
    assert not prompt_reaches(BatchPrompt(frame=39, objects={}), list(FRAMES))


def test_lazy_frames_hands_over_the_source_only_and_restores_sam2s_loader(batch):
    import sam2.sam2_video_predictor as svp

    from sam2flow.frame_folders import frame_paths
    from sam2flow.frame_source import FrameSource

    original = svp.load_video_frames
    source = FrameSource(list(frame_paths(batch).values()), SIZE)
    try:
        with lazy_frames(source):
            assert svp.load_video_frames(source, image_size=SIZE) == (source, SIZE, SIZE)
            images, height, width = svp.load_video_frames(
                video_path=str(batch), image_size=SIZE, offload_video_to_cpu=True
            )
            assert (len(images), height, width) == (40, SIZE, SIZE)
    finally:
        source.close()
    assert svp.load_video_frames is original


@pytest.mark.parametrize("prompt_frame", [42, 77])
def test_outputs_sam2_will_not_read_again_are_dropped_while_propagating(
    batch, tmp_path, prompt_frame
):
    """SAM 2 reads 7 frames back (the stand-in's ``num_maskmem``); the 37 frames forward
    (or backward) of the prompt would all be held without pruning. Kept: the window behind
    the current frame and the window around the prompt, which the other direction reads."""
    model = stand_in([prompt_frame])
    segment(batch, tmp_path / "out", model=model, prompt_frame=prompt_frame)
    assert 8 <= model.predictor.most_held <= 7 + 1 + 2 * 7 + 1


def test_each_inference_state_holds_only_the_frames_of_its_chunk(batch, tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=20")
    model = stand_in()
    memory = GuardConfig(min_chunk=10, **QUIET)
    assert segment(batch, tmp_path / "out", model=model, memory=memory)["status"] == "recovered"
    states = model.predictor.states
    assert len(states) >= 3 and all(st["held"] == len(st["used"]) for st in states)


def test_the_model_stays_where_it_is_when_the_plan_keeps_its_device(batch, tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=20")
    model = stand_in()
    segment(batch, tmp_path / "out", model=model, memory=GuardConfig(min_chunk=10, **QUIET))
    assert len(model.predictor.states) >= 3 and model.predictor.moved == []


def test_the_decoder_asked_for_makes_the_models_input(batch, tmp_path):
    from sam2flow.frame_source import opencv_frame, sam2_frame

    first = batch / frame_file(40)
    for decoder, decode in [("opencv", opencv_frame), ("sam2", sam2_frame)]:
        model = stand_in()
        segment(batch, tmp_path / decoder, model=model, decoder=decoder)
        assert torch.equal(model.predictor.states[0]["first"], decode(first, SIZE))


def test_each_kind_of_prompt_reaches_sam2_on_the_prompt_frame(batch, tmp_path):
    """Points with their labels, a box, or a mask: each as SAM 2's own call, on the frame
    the prompt names, and nothing else."""
    import cv2 as cv

    png = np.zeros((SIZE, SIZE), np.uint8)
    png[4:12, 8:20] = 255
    cv.imwrite(str(tmp_path / "mask.png"), png)
    kinds = {
        "points": dict(points="16,16;3,4,0"),
        "box": dict(box="2,3,20,25"),
        "mask": dict(mask=str(tmp_path / "mask.png")),
    }
    calls = {}
    for kind, prompt in kinds.items():
        model = stand_in()
        segment(batch, tmp_path / kind, model=model, prompt=prompt)
        calls[kind] = model.predictor.prompted
    (points,) = calls["points"]
    assert points[:2] == (42, 1) and points[4] is None and points[5] is None
    assert points[2].tolist() == [[16, 16], [3, 4]] and points[3].tolist() == [1, 0]
    (box,) = calls["box"]
    assert box[:2] == (42, 1) and box[2] is None and box[3] is None
    assert box[4].tolist() == [2, 3, 20, 25] and box[5] is None
    (mask,) = calls["mask"]
    assert mask[:5] == (42, 1, None, None, None)
    np.testing.assert_array_equal(mask[5], png > 0)


def test_the_videos_length_comes_from_its_manifest_and_names_default_to_the_folder(batch, tmp_path):
    """A prompt on frame 100 is on the video (120 frames, says frames.json), not on this
    batch: no prompt here, not an error. Without a batch name the folder names it."""
    record = segment_folder(
        batch,
        tmp_path / "out",
        prompt=PromptOptions(points="16,16", prompt_frame=100),
        model=stand_in(),
        memory=GuardConfig(**QUIET),
    )
    assert record["frame_status"] == {"no_prompt": 40}
    assert (record["video"], record["batch"]) == ("", "")
    with pytest.raises(MemoryError, match=f"^batch {batch} needs about "):
        segment_folder(
            batch,
            tmp_path / "small",
            prompt=PromptOptions(points="16,16", prompt_frame=42),
            model=stand_in(),
            memory=GuardConfig(**QUIET),
            mem_mb=1,
        )


def test_a_manual_prompt_off_the_video_is_an_error_naming_its_frames(batch, tmp_path):
    with pytest.raises(UserError) as err:
        segment(batch, tmp_path / "out", prompt_frame=120)
    assert str(err.value) == (
        "prompt frame 120 is outside the video (frames 0-119): fix prompt_frame (--prompt-frame)"
    )


def test_pruning_backward_keeps_the_window_ahead_and_the_prompts_and_counts_what_it_drops():
    from sam2flow.segment import prune_outputs

    def state():
        outs = {k: {} for k in range(100)}
        return {"output_dict_per_obj": {o: {"non_cond_frame_outputs": dict(outs)} for o in (1, 2)}}

    backward = state()
    dropped = prune_outputs(backward, frame=20, reverse=True, window=16, keep_near=99)
    for out in backward["output_dict_per_obj"].values():
        assert sorted(out["non_cond_frame_outputs"]) == list(range(0, 37)) + list(range(83, 100))
    assert dropped == 2 * (83 - 37)
    forward = state()
    assert prune_outputs(forward, frame=80, reverse=False, window=16, keep_near=0) == 2 * 47


def test_a_batch_of_one_frame_is_segmented(tmp_path):
    """The last batch of a video may hold a single frame."""
    root = tmp_path / "frames"
    (root / "0001").mkdir(parents=True)
    image = np.repeat(blocks(40)[:, :, None], 3, axis=2).astype(np.uint8) * 255
    cv2.imwrite(str(root / "0001" / frame_file(40)), image)
    batches = {"0000": [0, 39], "0001": [40, 40]}
    (root / MANIFEST).write_text(
        Extraction("v.mp4", 41, SIZE, SIZE, 30.0, 40, 95, batches).to_json()
    )
    record = segment(root / "0001", tmp_path / "out", model=stand_in([40]), prompt_frame=40)
    assert record["frame_status"] == {"ok": 1} and record["last_frame"] == 40


def test_without_a_manifest_the_folder_is_the_video(batch, tmp_path):
    """A frame folder made by hand (SAM 2's README): its last frame ends the video."""
    (batch.parent / MANIFEST).unlink()
    assert segment(batch, tmp_path / "ok", prompt_frame=79, model=stand_in([79]))["status"] == "ok"
    with pytest.raises(UserError) as err:
        segment(batch, tmp_path / "out", prompt_frame=80)
    assert str(err.value).startswith("prompt frame 80 is outside the video (frames 0-79)")


def test_a_point_off_the_frame_is_refused_before_the_model_runs(batch, tmp_path):
    model = stand_in()
    with pytest.raises(UserError) as err:
        segment(batch, tmp_path / "out", model=model, prompt=dict(points="40,5"))
    assert str(err.value).startswith("object 1: point (40, 5) on frame 42 is outside the 32x32")
    assert model.predictor.states == [] and not (tmp_path / "out").exists()


def test_the_host_memory_given_is_logged(batch, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sam2flow.segment")
    segment(batch, tmp_path / "out", mem_mb=64_000)
    assert "host memory given to this job: mem_mb=64000" in caplog.messages


@pytest.mark.parametrize("prompt_frame, restart", [(42, 50), (70, 41)])
@pytest.mark.parametrize("min_chunk", [1, 2])
def test_after_a_skip_work_starts_again_on_the_next_frame_with_its_own_points(
    batch, tmp_path, monkeypatch, min_chunk, prompt_frame, restart
):
    """DeepLabCut points on frames 50, 60, 70 and the prompt's and the restart's, each at
    its own place; frames 45-47 run out of memory at every level. Past them (forward from
    42, or backward from 70) work starts again on the next frame with points, with that
    frame's points, in chunks of one or two frames (backward: frames 41 and 40 left);
    only frames between two frames with points are skipped."""
    from test_alignment import dlc_file

    prompted = dict.fromkeys([restart, 50, 60, 70], 0.9) | {prompt_frame: 1.0}
    csv = dlc_file(tmp_path / "dlc.csv", 120, prompted, 1, xy=lambda f: (f % 32, 5))
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "frames=45-47")
    model = stand_in(prompted)
    memory = GuardConfig(min_chunk=min_chunk, **QUIET)
    record = segment(
        batch, tmp_path / "out", model, None, dict(prompts_file=str(csv)), memory=memory
    )
    points = {seen: p.tolist() for seen, _, p, *_ in model.predictor.prompted if p is not None}
    assert {prompt_frame, restart} <= set(points)
    assert all(xy == [[seen % 32, 5]] for seen, xy in points.items()), points
    skipped = [f for lo, hi in record["skipped_ranges"] for f in range(lo, hi + 1)]
    # Forward from 42: 45 fails, 46-49 have no mask to go on from, 50 has its own points.
    # Backward from 70: 47 fails, 46-42 likewise, 41 has its own points.
    expected = {42: range(45, 50), 70: range(42, 48)}[prompt_frame]
    assert sorted(skipped) == list(expected), record["skipped_ranges"]
    assert record["frame_status"] == {"ok": 40 - len(skipped), "skipped_oom": len(skipped)}


def test_a_skip_to_the_batchs_end_leaves_the_frame_below_the_prompt(batch, tmp_path, monkeypatch):
    """The prompt on the batch's second frame, 41; frames 70-75 fail at every level and no
    frame after them has a prompt: frame 40 is still segmented, backward from the prompt."""
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "frames=70-75")
    memory = GuardConfig(min_chunk=2, **QUIET)
    record = segment(batch, tmp_path / "out", stand_in([41]), 41, memory=memory)
    assert record["skipped_ranges"][-1][1] == 79 and record["skipped_ranges"][0][0] >= 60
    with np.load(tmp_path / "out" / "masks.npz") as data:
        assert data["status"][0].tolist() == ["ok"] and data["frames"][0] == 40


def test_a_records_times_are_in_milliseconds_and_its_rate_is_logged(batch, tmp_path, caplog):
    """A clock that moves 0.123456 s at each reading: seconds and frames/s keep 3 decimals,
    and the log line says the record's rate."""
    import itertools
    import time

    caplog.set_level(logging.INFO, logger="sam2flow.segment")
    ticks = itertools.count()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "perf_counter", lambda: next(ticks) * 0.123456)
        record = segment(batch, tmp_path / "out")
    seconds, rate = record["seconds"], record["frames_per_second"]
    assert seconds == round(seconds, 3) and seconds > 0
    assert isinstance(rate, float) and rate == round(rate, 3)
    assert rate == pytest.approx(40 / seconds, rel=1e-3)
    assert f"batch 0001: ok, 40 frames in {seconds:.1f} s ({rate:.2f} frames/s)" in caplog.messages


def test_peak_rss_is_the_kernels_high_water_mark_in_bytes():
    """Linux gives KiB (``VmHWM``); the result is in bytes, the kernel's own mark."""
    import re
    from pathlib import Path

    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs Linux's /proc")

    def hwm() -> int:
        return int(re.search(r"VmHWM:\s+(\d+) kB", status.read_text())[1]) * 1024

    # The mark only rises, and another thread may raise it at any instant (a bound on the
    # gap failed once so): the result lies between the kernel's mark before and after.
    before = hwm()
    peak = peak_rss_bytes()
    assert before <= peak <= hwm(), (before, peak)


def test_each_attempt_names_its_own_first_and_last_frame(batch, tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=20")
    record = segment(batch, tmp_path / "out", memory=GuardConfig(min_chunk=10, **QUIET))
    chunked = [a for a in record["attempts"] if a["frame_ranges"][0][1] > a["frame_ranges"][0][0]]
    assert len(record["attempts"]) >= 3 and chunked
    for attempt in record["attempts"]:
        runs = attempt["frame_ranges"]
        assert (attempt["first_frame"], attempt["last_frame"]) == (runs[0][0], runs[-1][1])


def test_a_batch_remembers_its_size_under_its_model_size_precision_frames_and_objects(
    batch, tmp_path, monkeypatch
):
    from sam2flow.memory import MemoryGuard

    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=30")
    memory = GuardConfig(monitoring=False, sizing_file=tmp_path / "sizes.json", min_chunk=10)
    segment(batch, tmp_path / "out", memory=memory)
    guard = MemoryGuard(memory, torch.device("cpu"))
    key = guard.sizing_key("stand-in", SIZE, 1, "float32", (SIZE, SIZE))
    assert list(json.loads((tmp_path / "sizes.json").read_text())) == [key]


def test_a_failure_mid_batch_keeps_the_frames_before_it(batch, tmp_path, monkeypatch):
    """Frame 60 runs out of memory at every level: frames 42-59 are stored once each (the
    guard goes on from 59, it does not redo them in smaller chunks), 60-79 are skipped."""
    from sam2flow.outputs import MaskStore

    puts = []
    real_put = MaskStore.put
    monkeypatch.setattr(MaskStore, "put", lambda self, f, logits: puts.append(f) or real_put(
        self, f, logits))  # fmt: skip
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "frames=60-60")
    record = segment(batch, tmp_path / "out")
    assert sorted(puts) == [*range(40, 60)], "every frame before 60 stored exactly once"
    assert record["skipped_ranges"] == [[60, 60], [61, 79]]
    assert record["attempts"][0]["frames_done"] == 18  # 42-59, then 60 failed


class DevicePredictor(RecordingPredictor):
    """Knows where it is (``to``) and runs out of memory on the devices in ``full``."""

    def __init__(self):
        super().__init__({42})
        self.device, self.full, self.seen = torch.device("meta"), set(), []

    def to(self, device):
        self.device = torch.device(device)
        return self

    def init_state(self, video_path, **options):
        self.seen.append(self.device.type)
        if self.device.type in self.full:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return super().init_state(video_path, **options)


def test_after_a_cpu_fallback_the_next_batch_runs_on_the_models_device(batch, tmp_path):
    predictor = DevicePredictor()
    model = LoadedModel(predictor, "stand-in", "random", SIZE, torch.device("meta"), None)
    memory = GuardConfig(allow_cpu_fallback=True, **QUIET)
    predictor.full = {"meta"}
    first = segment(batch, tmp_path / "first", model=model, memory=memory)
    assert first["attempts"][-1]["level"] == "cpu" and first["status"] == "recovered"
    assert predictor.device.type == "meta", "the model is back on its device"
    predictor.full, predictor.seen = set(), []
    second = segment(batch, tmp_path / "second", model=model, memory=memory)
    assert set(predictor.seen) == {"meta"}
    assert second["device"] == "meta" and [a["level"] for a in second["attempts"]] == ["whole"]


def test_the_video_length_given_wins_over_the_manifest(batch, tmp_path):
    """frames.json says 120 frames; the caller says 200: a prompt on frame 150 is on it."""
    record = segment(
        batch, tmp_path / "out", prompt_frame=150, prompt=dict(points="16,16", video_frames=200)
    )
    assert record["frame_status"] == {"no_prompt": 40}


def test_the_host_memory_needed_counts_the_prompts_objects_on_the_models_device(
    batch, tmp_path, monkeypatch
):
    """The estimate is asked for the batch as it will run: its frames and size, the prompt's
    objects (none counts as one) and the model's device. (At 32 px, one object more adds
    under a MiB, below what mem_mb can tell apart, so the question is checked.)"""
    from sam2flow import segment as segment_module

    asked = []
    real = segment_module.estimate_host
    monkeypatch.setattr(
        segment_module, "estimate_host", lambda *a, **k: asked.append((a, k)) or real(*a, **k)
    )
    from test_alignment import dlc_file

    two = dict(prompts_file=str(dlc_file(tmp_path / "dlc.csv", 120, {42: 1.0}, 2)))
    segment(batch, tmp_path / "two", stand_in(), None, two, mem_mb=64_000)
    segment(batch, tmp_path / "none", prompt_frame=5, mem_mb=64_000)
    model = (40, SIZE, SIZE)
    assert asked == [
        ((*model, 2, "stand-in", SIZE), {"device": "cpu"}),
        ((*model, 1, "stand-in", SIZE), {"device": "cpu"}),
    ]


def test_segment_batch_alone_shows_no_progress_and_leaves_a_prompt_off_its_frames(
    batch, tmp_path, capsys, caplog
):
    """Called as a library, a batch shows no progress bar unless asked; a prompt that does
    not reach it leaves every frame without a prompt, under object 1; a broken chain says
    why, in the log and as a skip a rerun mends."""
    from sam2flow.memory import MemoryGuard
    from sam2flow.prompts import ObjectPrompt

    guard = MemoryGuard(GuardConfig(**QUIET), torch.device("cpu"))
    off = BatchPrompt(5, {3: ObjectPrompt(points=np.array([[16.0, 16.0]]))})
    record = segment_batch(BatchJob(batch, tmp_path / "off", off), stand_in(), guard)
    assert record["frame_status"] == {"no_prompt": 40} and record["objects"] == [1]
    on = BatchPrompt(42, {1: ObjectPrompt(points=np.array([[16.0, 16.0]]), labels=np.array([1]))})
    record = segment_batch(BatchJob(batch, tmp_path / "on", on), stand_in(), guard)
    assert record["frame_status"] == {"ok": 40}
    assert "batch" not in capsys.readouterr().err
    broken = BatchPrompt(40, missing="the previous batch skipped its last frame")
    record = segment_batch(
        BatchJob(batch, tmp_path / "broken", broken, batch="0001"), stand_in(), guard
    )
    assert (record["status"], record["frames_skipped"]) == ("skipped", 40)
    assert record["skipped_ranges"] == [[40, 79]]
    assert (
        "batch 0001: no usable prompt in frames 40-79 (the previous batch skipped its last frame)"
        in caplog.messages
    )


def test_the_cpu_fallback_moves_the_model_to_the_cpu_once(batch, tmp_path):
    """A model on another device (``meta`` stands in for a GPU) and two attempts planned on
    the CPU, as the guard's last level plans them: the model moves to the CPU once, and
    both attempts' frames are segmented."""
    from sam2flow.frame_folders import frame_paths
    from sam2flow.memory.recovery import Plan
    from sam2flow.outputs import MaskStore
    from sam2flow.prompts import prompt_for_batch
    from sam2flow.segment import _Segmenter

    predictor = RecordingPredictor({42})
    model = LoadedModel(predictor, "stand-in", "random", SIZE, torch.device("meta"), None)
    paths = frame_paths(batch)
    store = MaskStore(list(paths), [1], SIZE, SIZE)
    prompt = prompt_for_batch(list(paths), PromptOptions(points="16,16", prompt_frame=42))
    work = _Segmenter(BatchJob(batch, tmp_path, prompt), model, paths, store)
    cpu = torch.device("cpu")
    carry = work(Plan("cpu", cpu, False, 0, 19), None)
    work(Plan("cpu", cpu, False, 20, 39), carry)
    assert predictor.moved == [cpu]
    assert store.status_counts() == {"ok": 40}


def test_a_crash_leaves_what_the_guard_tried_and_a_later_success_removes_it(batch, tmp_path):
    predictor = DevicePredictor()
    model = LoadedModel(predictor, "stand-in", "random", SIZE, torch.device("meta"), None)
    calls = []

    def init_state(video_path, **options):
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    predictor.init_state = init_state
    with pytest.raises(RuntimeError, match="illegal memory access"):
        segment(batch, tmp_path / "out", model=model)
    crash = json.loads((tmp_path / "out" / "crashed.json").read_text())
    assert (crash["video"], crash["batch"]) == ("v", "0001")
    assert crash["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert [(a["level"], a["outcome"]) for a in crash["attempts"]] == [("whole", "oom")]
    assert not (tmp_path / "out" / "memory.json").exists()
    del predictor.init_state
    segment(batch, tmp_path / "out", model=model)
    assert not (tmp_path / "out" / "crashed.json").exists()
    assert (tmp_path / "out" / "memory.json").is_file()


def failing_model(error: BaseException) -> LoadedModel:
    model = stand_in()

    def init_state(video_path, **options):
        raise error

    model.predictor.init_state = init_state
    return model


def test_a_crash_record_names_an_error_without_words_by_its_type_and_is_logged(
    batch, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="sam2flow.segment")
    with pytest.raises(KeyError):
        segment(batch, tmp_path / "out", model=failing_model(KeyError()))
    path = tmp_path / "out" / "crashed.json"
    crash = json.loads(path.read_text())
    assert crash["error"] == "KeyError" and crash["host_peak_rss_bytes"] > 0
    assert "\n" in path.read_text()  # read by people: one field a line
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "sam2flow.segment"]
    assert ("ERROR", f"batch 0001 failed; what it tried: {path}") in said


def test_a_crash_record_that_cannot_be_written_leaves_the_error_itself(
    batch, tmp_path, caplog, monkeypatch
):
    from sam2flow import segment as segment_module

    write_text = segment_module.write_text

    def full_at_the_crash_record(path, text):
        if Path(path).name == "crashed.json":
            raise OSError("No space left on device")
        write_text(path, text)

    monkeypatch.setattr(segment_module, "write_text", full_at_the_crash_record)
    with pytest.raises(RuntimeError, match="^a bug$"):
        segment(batch, tmp_path / "out", model=failing_model(RuntimeError("a bug")))
    said = [r.getMessage() for r in caplog.records if r.name == "sam2flow.segment"]
    path = tmp_path / "out" / "crashed.json"
    assert f"could not write {path}: No space left on device" in said


def test_the_decoding_threads_asked_for_decode_the_batch(batch, tmp_path, monkeypatch):
    from sam2flow import segment as segment_module

    asked = []

    class Counting(segment_module.FrameSource):
        def __init__(self, *args, threads=None, **kwargs):
            asked.append(threads)
            super().__init__(*args, threads=threads, **kwargs)

    monkeypatch.setattr(segment_module, "FrameSource", Counting)
    segment(batch, tmp_path / "out", threads=3)
    assert asked and set(asked) == {3}


def test_one_frame_finished_before_an_oom_is_kept(batch, tmp_path, monkeypatch):
    """The prompt frame (42) is done, 43 fails: that one frame is not done again."""
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "frames=43-43")
    record = segment(batch, tmp_path / "out")
    assert record["attempts"][0]["frames_done"] == 1


def test_carried_masks_of_another_videos_content_are_refused(batch, tmp_path):
    manifest = json.loads((batch.parent / MANIFEST).read_text())
    (batch.parent / MANIFEST).write_text(json.dumps({**manifest, "source": "100:aaa"}))
    before = tmp_path / "before"
    before.mkdir()
    mask = np.zeros((1, 1, SIZE * SIZE), bool)
    np.savez_compressed(
        before / "masks.npz",
        frames=np.array([39]),
        object_ids=np.array([1]),
        masks=np.packbits(mask, axis=-1),
        shape=np.array([1, 1, SIZE, SIZE]),
        status=np.array([["ok"]]),
    )
    (before / "memory.json").write_text(json.dumps({"video_identity": "100:bbb"}))
    carried = {"carry_from": str(before / "masks.npz"), "carry_image": str(batch / frame_file(40))}
    with pytest.raises(UserError, match="^carried masks come from another video"):
        segment(batch, tmp_path / "out", prompt=carried, prompt_frame=None)
    (before / "memory.json").unlink()  # not a batch's record: the suite checks those


def test_a_restart_on_the_batchs_last_frame_alone_stores_its_mask(batch, tmp_path, monkeypatch):
    """DeepLabCut points on frames 42 and 79; 60 fails at every level: 60-78 are skipped,
    and work starts again on 79 alone, a chunk of one frame that is its own prompt."""
    from test_alignment import dlc_file

    prompted = {42: 1.0, 79: 0.9}
    csv = dlc_file(tmp_path / "dlc.csv", 120, prompted, 1, xy=lambda f: (f % 32, 5))
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "frames=60-60")
    record = segment(batch, tmp_path / "out", stand_in(prompted), None, dict(prompts_file=str(csv)))
    assert record["skipped_ranges"] == [[60, 60], [61, 78]]
    with np.load(tmp_path / "out" / "masks.npz") as data:
        assert data["frames"][-1] == 79 and data["status"][-1].tolist() == ["ok"]
    assert record["frame_status"] == {"ok": 21, "skipped_oom": 19}
