"""Merged masks and the overlay, against the batch outputs they are made from."""

from __future__ import annotations

import tracemalloc

import av
import cv2
import numpy as np
import torch

from sam2flow.outputs import (
    MaskStore,
    iter_packed,
    load_masks,
    merge_video,
    read_masks,
    render_overlay,
)

H, W = 48, 160


def bar(frame: int) -> np.ndarray:
    """Frame ``frame``'s mask: a 4-pixel vertical bar at x = 8 * (frame % 20)."""
    mask = np.zeros((H, W), dtype=bool)
    x = 8 * (frame % 20)
    mask[:, x : x + 4] = True
    return mask


def write_batch(out, frames: list[int], objects: list[int]) -> None:
    """A batch's masks.npz and frames.csv: object k's mask on frame f is ``bar(f + k)``."""
    store = MaskStore(frames, objects, H, W)
    for f in frames:
        masks = np.stack([bar(f + k) for k in objects])
        store.put(f, torch.from_numpy(np.where(masks, 5.0, -5.0)).float()[:, None])
    store.flush()
    out.mkdir(parents=True)
    np.savez_compressed(
        out / "masks.npz",
        frames=store.frames,
        object_ids=store.object_ids,
        masks=store.packed,
        shape=np.asarray([len(frames), len(objects), H, W]),
        status=store.status.astype(str),
    )
    store.table().to_csv(out / "frames.csv", index=False)


def test_merge_keeps_every_batch_mask_in_its_slot_and_pads_absent_objects(tmp_path):
    write_batch(tmp_path / "0000", list(range(0, 10)), [1])
    write_batch(tmp_path / "0001", list(range(10, 25)), [1, 2])
    table = merge_video([tmp_path / "0001", tmp_path / "0000"], tmp_path / "merged")
    frames, objects, masks = load_masks(tmp_path / "merged" / "masks.npz")
    with np.load(tmp_path / "merged" / "masks.npz") as data:
        status = data["status"]
    assert frames.tolist() == list(range(25)) and objects.tolist() == [1, 2]
    for f in range(25):
        assert np.array_equal(masks[f, 0], bar(f + 1)), f
    assert (status[:10, 1] == "no_prompt").all() and not masks[:10, 1].any()
    for f in range(10, 25):
        assert np.array_equal(masks[f, 1], bar(f + 2)), f
    assert (status[:, 0] == "ok").all() and (status[10:, 1] == "ok").all()
    assert table[["frame", "object"]].values.tolist() == sorted(
        [[f, 1] for f in range(25)] + [[f, 2] for f in range(10, 25)]
    )
    streamed = list(iter_packed(tmp_path / "merged" / "masks.npz"))
    assert [f for f, _ in streamed] == list(range(25))
    with np.load(tmp_path / "merged" / "masks.npz") as data:
        assert all(np.array_equal(p, data["masks"][i]) for i, (_, p) in enumerate(streamed))


def grey_video(path, frames: int):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    for _ in range(frames):
        writer.write(np.full((H, W, 3), 90, np.uint8))
    writer.release()
    return path


def test_the_overlay_draws_each_frames_own_mask_on_that_frame(tmp_path):
    video = grey_video(tmp_path / "v.mp4", 20)
    write_batch(tmp_path / "0000", list(range(20)), [1])
    merge_video([tmp_path / "0000"], tmp_path / "merged")
    render_overlay(
        video, tmp_path / "merged" / "masks.npz", tmp_path / "o.mp4", tmp_path / "sheet.png"
    )
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    drawn = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        below_label = img[30:, :, :].astype(int)  # under the frame number
        change = np.abs(below_label - 90).sum(axis=(0, 2))
        x = 8 * ((drawn + 1) % 20)  # object 1 on frame f is bar(f + 1)
        assert abs(int(np.argmax(change)) - (x + 1.5)) <= 4, (drawn, np.argmax(change))
        drawn += 1
    assert drawn == 20
    with av.open(str(tmp_path / "o.mp4")) as played:  # what browsers and the report play
        stream = played.streams.video[0]
        assert (stream.codec_context.name, stream.format.name) == ("h264", "yuv420p")
    assert cv2.imread(str(tmp_path / "sheet.png")) is not None


def overlay_peak(tmp_path, frames: int) -> int:
    """Peak Python-tracked memory (numpy arrays included) while drawing ``frames`` frames."""
    folder = tmp_path / str(frames)
    video = grey_video(folder.with_suffix(".mp4"), frames)
    write_batch(folder / "0000", list(range(frames)), [1, 2, 3])
    merge_video([folder / "0000"], folder / "merged")
    tracemalloc.start()
    render_overlay(video, folder / "merged" / "masks.npz", folder / "o.mp4", folder / "s.png")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_overlay_memory_does_not_grow_with_the_video(tmp_path):
    """4x the frames: the masks alone would add 3 x 960 B x 300 frames = 864 KB if read whole."""
    short, long = overlay_peak(tmp_path, 100), overlay_peak(tmp_path, 400)
    assert long - short < 300_000, (short, long)


def test_read_masks_returns_the_frames_and_objects_asked_for(tmp_path):
    write_batch(tmp_path / "0000", list(range(0, 10)), [1])
    write_batch(tmp_path / "0001", list(range(10, 25)), [1, 2])
    merge_video([tmp_path / "0000", tmp_path / "0001"], tmp_path / "merged")
    frames, objects, masks = read_masks(tmp_path / "merged" / "masks.npz", range(12, 15), [2])
    assert frames.tolist() == [12, 13, 14] and objects.tolist() == [2]
    assert all(np.array_equal(masks[i, 0], bar(f + 2)) for i, f in enumerate(frames))
    everything = load_masks(tmp_path / "merged" / "masks.npz")
    whole = read_masks(tmp_path / "merged" / "masks.npz")
    assert all(np.array_equal(a, b) for a, b in zip(everything, whole, strict=True))
