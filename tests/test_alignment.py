"""Alignment: every frame lands in its own slot, through batches, chunks, carries and merge.

Frames carry their own index in their pixels. A stand-in with SAM 2's video-predictor
interface reads the index back from the tensor it is given and answers with a mask that
encodes that index and the object id; a carried mask must encode the frame it is added on.
So a slot holding another frame's result, a lost or doubled slot, or a hand-over from the
wrong frame shows. The bookkeeping is under test here, not SAM 2: the same harness also
runs the real model (random weights) for the slot structure, and ``test_seams.py`` and the
equivalence tests compare against SAM 2's own masks.
"""

from __future__ import annotations

import functools
import logging
import math
import multiprocessing
import os
import random
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sam2flow import maskfile
from sam2flow.frame_folders import MANIFEST, Extraction, batch_name, frame_file
from sam2flow.memory import GuardConfig
from sam2flow.models import LoadedModel
from sam2flow.outputs import FRAME_STATUSES, load_masks, merge_video
from sam2flow.plan.carry import carry_source, own_prompt_batches
from sam2flow.prompts import PromptOptions
from sam2flow.segment import segment_folder

from conftest import keep_first

SIZE = 32  # frames are 32 x 32: a 4 x 4 grid of 8 x 8 blocks, one bit each
MAX_FRAMES = 2000
FRAME_BITS, OBJECT_SHIFT, VALID_BIT, POISON_BIT = 11, 11, 13, 14


BIT_ROWS, BIT_COLS = np.divmod(np.arange(16), 4)
POWERS = 1 << np.arange(16)


@functools.cache
def blocks(value: int) -> np.ndarray:
    """A SIZE x SIZE bool image whose 16 blocks spell ``value`` in binary."""
    bits = (value >> np.arange(16) & 1).astype(bool).reshape(4, 4)
    image = np.kron(bits, np.ones((8, 8), dtype=bool))
    image.flags.writeable = False
    return image


def read_blocks(image: np.ndarray) -> int:
    """The value ``blocks`` wrote, from the centre of each block (any image size)."""
    cell = image.shape[0] // 4
    centres = image[BIT_ROWS * cell + cell // 2, BIT_COLS * cell + cell // 2]
    return int(POWERS[centres].sum())


def index_of(tensor: torch.Tensor) -> int:
    """The frame index written in a frame, read back from SAM 2's normalised tensor."""
    cell = tensor.shape[-1] // 4
    red = tensor[0].numpy()[BIT_ROWS * cell + cell // 2, BIT_COLS * cell + cell // 2]
    return int(POWERS[red * 0.229 + 0.485 > 0.5].sum())


def mask_value(frame: int, obj: int, poison: bool) -> int:
    return frame | obj << OBJECT_SHIFT | 1 << VALID_BIT | int(poison) << POISON_BIT


@functools.lru_cache(maxsize=4096)
def logits_for(frame: int, obj_ids: tuple[int, ...], poison: bool) -> torch.Tensor:
    """SAM 2's output for one frame: objects x 1 x H x W logits (+10 inside, -10 outside)."""
    masks = np.stack([blocks(mask_value(frame, o, poison)) for o in obj_ids])
    return torch.from_numpy(np.where(masks, 10.0, -10.0).astype(np.float32))[:, None]


def decode_mask(mask: np.ndarray) -> tuple[int, int, bool]:
    value = read_blocks(mask)
    frame = value & ((1 << FRAME_BITS) - 1)
    return frame, value >> OBJECT_SHIFT & 3, bool(value >> POISON_BIT & 1)


class IndexPredictor:
    """SAM 2's video-predictor interface; its masks say which frame it saw.

    A prompt on the wrong frame, a carried mask from another frame or object, or a
    propagation that starts off a prompted frame poisons every later mask of the state.
    """

    num_maskmem = 7
    memory_temporal_stride_for_eval = 1
    use_obj_ptrs_in_encoder = False
    image_size = SIZE

    def __init__(self, prompt_frames: set[int]):
        self.prompt_frames = prompt_frames

    def to(self, device):
        return self

    def init_state(self, video_path, offload_video_to_cpu=False, offload_state_to_cpu=False):
        import sam2.sam2_video_predictor as svp

        images, height, width = svp.load_video_frames(
            video_path=video_path,
            image_size=self.image_size,
            offload_video_to_cpu=offload_video_to_cpu,
        )
        return {
            "images": images,
            "num_frames": len(images),
            "video_height": height,
            "video_width": width,
            "output_dict_per_obj": {},
            "prompted": set(),
            "poison": False,
        }

    def _outputs(self, state, obj_id):
        empty = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        return state["output_dict_per_obj"].setdefault(obj_id, empty)

    def add_new_points_or_box(self, state, frame_idx, obj_id, points=None, labels=None, box=None):
        if index_of(state["images"][frame_idx]) not in self.prompt_frames:
            state["poison"] = True
        state["prompted"].add(frame_idx)
        self._outputs(state, obj_id)["cond_frame_outputs"][frame_idx] = True

    def add_new_mask(self, state, frame_idx, obj_id, mask):
        frame, obj, poison = decode_mask(mask.numpy())
        if poison or (frame, obj) != (index_of(state["images"][frame_idx]), obj_id):
            state["poison"] = True
        state["prompted"].add(frame_idx)
        self._outputs(state, obj_id)["cond_frame_outputs"][frame_idx] = True

    def propagate_in_video(self, state, start_frame_idx, max_frame_num_to_track, reverse=False):
        if start_frame_idx not in state["prompted"]:
            state["poison"] = True
        step = -1 if reverse else 1
        end = start_frame_idx + step * max_frame_num_to_track
        end = min(max(end, 0), state["num_frames"] - 1)
        obj_ids = sorted(state["output_dict_per_obj"])
        for idx in range(start_frame_idx, end + step, step):
            seen = index_of(state["images"][idx])
            for o in obj_ids:
                self._outputs(state, o)["non_cond_frame_outputs"][idx] = True
            yield idx, obj_ids, logits_for(seen, tuple(obj_ids), state["poison"])


class Pool:
    """Up to MAX_FRAMES frames, each showing its own index, each written the first time a
    test asks for it: the fixed cases need a few hundred, and a mutation run sets the pool
    up again for every mutant (all 2,000 took 3.8 s of each mutant's run)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def link(self, frame: int, dest: Path) -> None:
        """Hard-link frame ``frame`` to ``dest``, writing it first if no test has yet. The
        1,000-configuration test's workers share the pool: the first to write a frame
        keeps it (``keep_first``)."""
        path = self.folder / frame_file(frame)
        if not path.exists():
            image = np.repeat(blocks(frame)[:, :, None], 3, axis=2).astype(np.uint8) * 255
            part = path.with_name(f"{path.stem}.{os.getpid()}.part.jpg")
            cv2.imwrite(str(part), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            keep_first(part, path)
        os.link(path, dest)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Pool:
    return Pool(tmp_path_factory.mktemp("pool"))


def random_config(rng: random.Random) -> dict:
    frames = min(MAX_FRAMES, round(math.exp(rng.uniform(0, math.log(MAX_FRAMES)))))
    batch_size = rng.randint(max(1, -(-frames // 6)), frames)  # at most 6 batches
    return dict(
        frames=frames,
        batch_size=batch_size,
        min_chunk=rng.choice([1, 2, 5, 25, 25, 40]),
        oom_above=rng.choice([None, None, rng.randint(1, max(1, batch_size))]),
        prompt_frame=rng.randrange(frames),
        carry=rng.choice(["auto", "independent", "chained"]),
        objects=rng.randint(1, 3),
        # DeepLabCut points also on every k-th frame: where the guard starts again after
        # a skip (and a prompt of their own for the batches they fall in).
        reprompt=rng.choice([None, None, None, rng.randint(2, 60)]),
    )


def prompt_frames(cfg: dict) -> dict[int, float]:
    """Frames with DeepLabCut points -> likelihood (the configured one is every batch's best)."""
    every = cfg.get("reprompt") if cfg["objects"] > 1 else None
    frames = (
        {f: 0.9 for f in range(cfg["prompt_frame"] % every, cfg["frames"], every)} if every else {}
    )
    return frames | {cfg["prompt_frame"]: 1.0}


def dlc_file(path, frames: int, prompted: dict[int, float], objects: int, xy=lambda f: (16, 16)):
    """A multi-animal DeepLabCut prediction file with usable points on ``prompted`` frames
    (frame -> likelihood) only, at ``xy(frame)``."""
    header = [
        ",".join(["scorer"] + ["s"] * 3 * objects),
        ",".join(["individuals"] + [f"animal{k}" for k in range(objects) for _ in range(3)]),
        ",".join(["bodyparts"] + ["snout"] * 3 * objects),
        ",".join(["coords"] + ["x", "y", "likelihood"] * objects),
    ]
    rows = [
        ",".join(
            [str(f)]
            + ([*map(str, xy(f)), str(prompted[f])] if f in prompted else ["", "", ""]) * objects
        )
        for f in range(frames)
    ]
    path.write_text("\n".join(header + rows) + "\n")
    return path


def run_config(cfg: dict, pool, folder, model) -> dict:
    """Lay out batches as ``sam2flow extract`` does, segment them in order, merge."""
    n, size = cfg["frames"], cfg["batch_size"]
    root = folder / "frames"
    batches = {}
    for b, first in enumerate(range(0, n, size)):
        name, last = batch_name(b), min(first + size, n) - 1
        (root / name).mkdir(parents=True)
        for f in range(first, last + 1):
            pool.link(f, root / name / frame_file(f))
        batches[name] = [first, last]
    manifest = Extraction("index.mp4", n, SIZE, SIZE, 30.0, size, 95, batches)
    (root / MANIFEST).write_text(manifest.to_json())
    if cfg["objects"] == 1:
        prompt = PromptOptions(points=f"{SIZE // 2},{SIZE // 2}", prompt_frame=cfg["prompt_frame"])
    else:
        csv = dlc_file(folder / "dlc.csv", n, prompt_frames(cfg), cfg["objects"])
        prompt = PromptOptions(prompts_file=str(csv))
    own = own_prompt_batches(batches, prompt)
    memory = GuardConfig(min_chunk=cfg["min_chunk"], adaptive_batch_size=False, monitoring=False)
    records = {}
    for name in sorted(batches):
        source = carry_source(name, sorted(batches), cfg["carry"], own)
        carry = folder / "out" / source / "masks.npz" if source else None
        records[name] = segment_folder(
            root / name,
            folder / "out" / name,
            prompt=replace(prompt, carry_from=carry),
            model=model,
            memory=memory,
            batch=name,
        )
    merge_video([folder / "out" / name for name in sorted(batches)], folder / "merged")
    return {"batches": batches, "own": own, "records": records}


def expected_no_prompt(cfg: dict, batches: dict, records: dict) -> set[str]:
    """Batches that have nothing to start from: no prompt of their own and no chain into
    them (independent, before the first prompted batch, or after a chain broken by a skip)."""
    prompted = {f // cfg["batch_size"] for f in prompt_frames(cfg)}
    names = sorted(batches)
    out = set()
    for i, name in enumerate(names):
        if i in prompted:
            continue
        if cfg["carry"] == "independent" or i < min(prompted):
            out.add(name)
            continue
        previous, last = names[i - 1], batches[names[i - 1]][1]
        skipped = records[previous]["skipped_ranges"]
        if previous in out or any(lo <= last <= hi for lo, hi in skipped):
            out.add(name)
    return out


def check_alignment(cfg: dict, run: dict, folder, index_encoded: bool) -> None:
    n, k = cfg["frames"], cfg["objects"]
    frames, objects, masks = load_masks(folder / "merged" / "masks.h5")
    status = maskfile.read_status(folder / "merged" / "masks.h5")
    assert frames.tolist() == list(range(n)), "a frame is missing, doubled or out of order"
    assert objects.tolist() == list(range(1, k + 1))
    assert status.shape == (n, k) and np.isin(status, FRAME_STATUSES).all()
    batches, records = run["batches"], run["records"]
    no_prompt = expected_no_prompt(cfg, batches, records)
    for name, (first, last) in batches.items():
        st = status[first : last + 1]
        record = records[name]
        assert sum(record["frame_status"].values()) == (last - first + 1) * len(record["objects"])
        if name in no_prompt:
            assert (st == "no_prompt").all(), (name, record)
            continue
        skipped = np.zeros(last - first + 1, dtype=bool)
        for lo, hi in record["skipped_ranges"]:
            skipped[lo - first : hi - first + 1] = True
        assert (st[skipped] == "skipped_oom").all(), (name, record)
        done = ["ok"] if index_encoded else ["ok", "empty"]  # random weights may lose it
        assert np.isin(st[~skipped], done).all(), (name, record)
    if cfg["oom_above"] is None:
        assert not (status == "skipped_oom").any()
    if index_encoded:
        for f in np.flatnonzero((status == "ok").all(axis=1)):
            for j in range(k):
                assert decode_mask(masks[f, j]) == (f, j + 1, False), (f, j + 1, cfg)


def set_injected_oom(cfg: dict) -> None:
    if cfg["oom_above"] is None:
        os.environ.pop("SAM2FLOW_INJECT_OOM", None)
    else:
        os.environ["SAM2FLOW_INJECT_OOM"] = f"above={cfg['oom_above']}"


def stand_in(cfg: dict) -> LoadedModel:
    predictor = IndexPredictor(set(prompt_frames(cfg)))
    return LoadedModel(predictor, "stand-in", "random", SIZE, torch.device("cpu"), None)


def run_stand_in_configs(configs: list[dict], pool, folder) -> int:
    """Run and check ``configs`` with the stand-in (in a worker process); frames checked."""
    from sam2flow.memory import devices

    logging.getLogger("sam2flow").setLevel(logging.ERROR)  # no-prompt warnings by the hundred
    torch.set_num_threads(1)  # one core per worker
    # The cleanup after each OOM (a full gc.collect, ~0.15 s) is not what is tested here.
    devices.clear_device_cache = lambda device: None
    try:
        for number, cfg in enumerate(configs):
            set_injected_oom(cfg)
            run = run_config(cfg, pool, folder / f"c{number}", stand_in(cfg))
            check_alignment(cfg, run, folder / f"c{number}", index_encoded=True)
    finally:
        os.environ.pop("SAM2FLOW_INJECT_OOM", None)
    return sum(c["frames"] for c in configs)


def test_alignment_over_1000_random_configurations(pool, tmp_path):
    rng = random.Random(14)
    configs = [random_config(rng) for _ in range(int(os.environ.get("ALIGN_N", 1000)))]
    started = time.perf_counter()
    workers = 2  # this machine's (and CI's) cores; each worker takes every other config
    with multiprocessing.get_context("spawn").Pool(workers) as processes:
        jobs = [
            processes.apply_async(
                run_stand_in_configs, (configs[w::workers], pool, tmp_path / f"w{w}")
            )
            for w in range(workers)
        ]
        frames = sum(job.get() for job in jobs)
    seconds = time.perf_counter() - started
    assert frames == sum(c["frames"] for c in configs)
    print(f"{len(configs)} configurations, {frames} frames, checked in {seconds:.1f} s")


@pytest.mark.slow
def test_slot_structure_with_the_real_model_over_20_configurations(
    pool, tmp_path, tiny_model, monkeypatch
):
    """The same harness on the real SAM 2 (random weights): slots, statuses, records."""
    rng = random.Random(18)
    configs = []
    while len(configs) < 20:
        cfg = random_config(rng)
        if cfg["frames"] <= 25:  # about 5 frames/s on this CPU
            configs.append(cfg)
    assert {c["carry"] for c in configs} == {"auto", "independent", "chained"}
    assert any(c["oom_above"] for c in configs) and any(c["objects"] > 1 for c in configs)
    for number, cfg in enumerate(configs):
        if cfg["oom_above"] is None:
            monkeypatch.delenv("SAM2FLOW_INJECT_OOM", raising=False)
        else:
            monkeypatch.setenv("SAM2FLOW_INJECT_OOM", f"above={cfg['oom_above']}")
        run = run_config(cfg, pool, tmp_path / f"c{number}", tiny_model)
        check_alignment(cfg, run, tmp_path / f"c{number}", index_encoded=False)


def segment_400(pool, folder, prompted: dict[int, float], objects: int, monkeypatch, oom: str):
    """One 400-frame batch through the stand-in, with ``SAM2FLOW_INJECT_OOM=oom``."""
    frames = folder / "frames" / batch_name(0)
    frames.mkdir(parents=True)
    for f in range(400):
        pool.link(f, frames / frame_file(f))
    csv = dlc_file(folder / "dlc.csv", 400, prompted, objects)
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", oom)
    model = LoadedModel(
        IndexPredictor(set(prompted)), "stand-in", "random", SIZE, torch.device("cpu"), None
    )
    memory = GuardConfig(adaptive_batch_size=False, monitoring=False)
    record = segment_folder(
        frames,
        folder / "out",
        prompt=PromptOptions(prompts_file=str(csv)),
        model=model,
        memory=memory,
    )
    _, _, masks = load_masks(folder / "out" / "masks.npz")
    with np.load(folder / "out" / "masks.npz") as data:
        status = data["status"]
    for f in np.flatnonzero((status == "ok").all(axis=1)):
        for j in range(objects):
            assert decode_mask(masks[f, j]) == (f, j + 1, False), f
    return record, status


def test_a_skip_takes_only_the_frames_it_cannot_reach(pool, tmp_path, monkeypatch):
    """DeepLabCut points on every 10th frame of a 400-frame batch; frames 120-145 run out
    of memory at every level: only frames inside 120-150 are skipped, every other is ok
    (its own frame's mask, restarted from its own prompt after the skip)."""
    every_10th = dict.fromkeys(range(0, 400, 10), 0.9)
    record, status = segment_400(pool, tmp_path, every_10th, 2, monkeypatch, "frames=120-145")
    skipped = np.flatnonzero((status == "skipped_oom").any(axis=1))
    assert skipped.min() >= 120 and skipped.max() <= 150, record["skipped_ranges"]
    assert set(range(120, 146)) <= set(skipped.tolist())
    assert (status[np.setdiff1d(np.arange(400), skipped)] == "ok").all()
    assert record["status"] == "skipped"
    assert len(record["skip_reasons"]) == len(record["skipped_ranges"]) >= 1


def test_three_chained_batches_start_each_from_the_last_mask_before_them(pool, tmp_path):
    """A fixed case of the random configurations: one click on frame 10, batches of 40,
    each later batch carried from the previous batch's last frame."""
    cfg = dict(frames=120, batch_size=40, min_chunk=25, oom_above=None, prompt_frame=10)
    cfg |= dict(carry="chained", objects=1, reprompt=None)
    run = run_config(cfg, pool, tmp_path, stand_in(cfg))
    check_alignment(cfg, run, tmp_path, index_encoded=True)
    sources = [r["prompt_source"] for r in run["records"].values()]
    assert sources[1:] == [
        f"carried from {tmp_path / 'out' / b / 'masks.npz'}" for b in ("0000", "0001")
    ]


def test_a_skip_backward_of_the_prompt_starts_again_on_the_next_prompt_below(
    pool, tmp_path, monkeypatch
):
    """The prompt on frame 300, DeepLabCut points on every 10th frame; frames 120-145 fail
    at every level while propagating backward. Below them, work starts again on a frame
    with its own points, and every frame outside 110-150 is its own frame's mask."""
    prompted = dict.fromkeys(range(0, 400, 10), 0.9) | {300: 1.0}
    record, status = segment_400(pool, tmp_path, prompted, 2, monkeypatch, "frames=120-145")
    skipped = np.flatnonzero((status == "skipped_oom").any(axis=1))
    assert set(range(120, 146)) <= set(skipped.tolist())
    assert skipped.min() >= 110 and skipped.max() <= 150, record["skipped_ranges"]
    assert (status[np.setdiff1d(np.arange(400), skipped)] == "ok").all()


def test_a_skip_forward_of_the_prompt_leaves_the_backward_range(pool, tmp_path, monkeypatch):
    """One prompt, on frame 200: frames 300-310 fail at every level. Forward from there
    nothing can be reached; frames 0-199, run backward from the prompt, are all ok."""
    record, status = segment_400(pool, tmp_path, {200: 1.0}, 1, monkeypatch, "frames=300-310")
    skipped = np.flatnonzero((status == "skipped_oom").any(axis=1))
    assert skipped.max() == 399 and 275 <= skipped.min() <= 300
    assert (status[: skipped.min()] == "ok").all()
    assert any("no mask to continue from" in why for why in record["skip_reasons"])


def test_every_frame_is_written_once_with_chunks_of_one_frame(pool, tmp_path, monkeypatch):
    """``--min-chunk 1``: the prompt frame (and every other) is stored exactly once."""
    from sam2flow.outputs import MaskStore

    writes = []
    put = MaskStore.put
    monkeypatch.setattr(
        MaskStore, "put", lambda self, f, logits: (writes.append(f), put(self, f, logits))
    )
    frames = tmp_path / "frames" / batch_name(0)
    frames.mkdir(parents=True)
    for f in range(30):
        pool.link(f, frames / frame_file(f))
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=1")
    model = LoadedModel(IndexPredictor({12}), "stand-in", "random", SIZE, torch.device("cpu"), None)
    memory = GuardConfig(min_chunk=1, adaptive_batch_size=False, monitoring=False)
    record = segment_folder(
        frames,
        tmp_path / "out",
        prompt=PromptOptions(points="16,16", prompt_frame=12),
        model=model,
        memory=memory,
    )
    assert record["status"] == "recovered" and record["final_chunk_size"] == 1
    assert sorted(writes) == list(range(30))
