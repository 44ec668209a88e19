"""Merged masks and the overlay, against the batch outputs they are made from."""

from __future__ import annotations

import json
import tracemalloc
import zipfile

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from sam2flow import maskfile
from sam2flow.errors import UserError, brief
from sam2flow.outputs import (
    COLUMNS,
    MaskStore,
    load_masks,
    merge_video,
    read_batch_layout,
    read_masks,
    write_batch_outputs,
)
from sam2flow.overlay import render_overlay

from conftest import listed_in_troubleshooting, video_of

H, W = 48, 160


def bar(frame: int) -> np.ndarray:
    """Frame ``frame``'s mask: a 4-pixel vertical bar at x = 8 * (frame % 20)."""
    mask = np.zeros((H, W), dtype=bool)
    x = 8 * (frame % 20)
    mask[:, x : x + 4] = True
    return mask


def write_batch(out, frames: list[int], objects: list[int]) -> None:
    """A batch's masks.npz and frames.csv: object k's mask on frame f is ``bar(f + k)``."""
    store = filled_store(frames, objects)
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
    frames, objects, masks = load_masks(tmp_path / "merged" / "masks.h5")
    status = maskfile.read_status(tmp_path / "merged" / "masks.h5")
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
    streamed = list(maskfile.iter_packed(tmp_path / "merged" / "masks.h5"))
    assert [f for f, _ in streamed] == list(range(25))
    packed = np.packbits(masks.reshape(25, 2, -1), axis=-1)
    assert all(np.array_equal(p, packed[i]) for i, (_, p) in enumerate(streamed))


def grey_video(path, frames: int):
    return video_of(path, [np.full((H, W, 3), 90, np.uint8)] * frames, 10)


def test_the_overlay_draws_each_frames_own_mask_on_that_frame(tmp_path):
    video = grey_video(tmp_path / "v.mp4", 20)
    write_batch(tmp_path / "0000", list(range(20)), [1])
    merge_video([tmp_path / "0000"], tmp_path / "merged")
    render_overlay(
        video, tmp_path / "merged" / "masks.h5", tmp_path / "o.mp4", tmp_path / "sheet.png"
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
    render_overlay(video, folder / "merged" / "masks.h5", folder / "o.mp4", folder / "s.png")
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
    frames, objects, masks = read_masks(tmp_path / "merged" / "masks.h5", range(12, 15), [2])
    assert frames.tolist() == [12, 13, 14] and objects.tolist() == [2]
    assert all(np.array_equal(masks[i, 0], bar(f + 2)) for i, f in enumerate(frames))
    everything = load_masks(tmp_path / "merged" / "masks.h5")
    whole = read_masks(tmp_path / "merged" / "masks.h5")
    assert all(np.array_equal(a, b) for a, b in zip(everything, whole, strict=True))


@pytest.fixture
def merged(tmp_path):
    """Three batches, the first without object 2, merged: ``masks.h5``."""
    write_batch(tmp_path / "0000", list(range(0, 10)), [1])
    write_batch(tmp_path / "0001", list(range(10, 25)), [1, 2])
    write_batch(tmp_path / "0002", list(range(25, 31)), [1, 2])
    merge_video([tmp_path / f"000{i}" for i in range(3)], tmp_path / "merged")
    return tmp_path / "merged" / "masks.h5"


def test_each_frame_and_object_read_alone_is_its_batch_mask(merged):
    rng = np.random.default_rng(0)
    for f in rng.permutation(31):
        for o in (1, 2):
            frames, objects, masks = read_masks(merged, [int(f)], [o])
            assert frames.tolist() == [f] and objects.tolist() == [o]
            expected = bar(f + o) if (o == 1 or f >= 10) else np.zeros((H, W), bool)
            assert np.array_equal(masks[0, 0], expected), (f, o)


def test_frames_asked_out_of_order_or_twice_come_back_as_asked(merged):
    frames, _, masks = read_masks(merged, [30, 3, 17, 3], [1])
    assert frames.tolist() == [30, 3, 17, 3]
    assert all(np.array_equal(masks[i, 0], bar(f + 1)) for i, f in enumerate(frames))
    assert read_masks(merged, [], [1])[2].shape == (0, 1, H, W)


@pytest.mark.parametrize(
    ("frames", "objects", "expected"),
    [
        ([31], None, "no frame 31 (frames 0-30)"),
        ([-1], None, "no frame -1 (frames 0-30)"),
        (None, [3], "no object 3 (objects: [1, 2])"),
    ],
)
def test_asking_for_what_the_file_does_not_hold_names_what_it_holds(
    merged, frames, objects, expected
):
    with pytest.raises(UserError) as err:
        read_masks(merged, frames, objects)
    assert expected in str(err.value) and str(merged) in str(err.value)
    listed_in_troubleshooting(str(err.value))


def test_a_file_that_is_not_a_mask_file_is_refused_with_its_name(tmp_path):
    for name, content in (("empty.h5", b""), ("other.h5", None)):
        path = tmp_path / name
        if content is None:
            import h5py

            with h5py.File(path, "w") as f:
                f["x"] = [1]
        else:
            path.write_bytes(content)
        with pytest.raises(UserError) as err:
            read_masks(path)
        assert str(path) in str(err.value)
        listed_in_troubleshooting(str(err.value))


def merge_error(tmp_path, batches) -> str:
    for name, frames, objects in batches:
        write_batch(tmp_path / name, frames, objects)
    with pytest.raises(UserError) as err:
        merge_video([tmp_path / name for name, _, _ in batches], tmp_path / "merged")
    assert not (tmp_path / "merged" / "masks.h5").exists()
    return str(err.value)


def test_batches_that_overlap_are_refused_naming_both_and_the_frames(tmp_path):
    text = merge_error(tmp_path, [("a", list(range(0, 10)), [1]), ("b", list(range(8, 20)), [1])])
    assert text == (
        f"batches {tmp_path / 'a'} and {tmp_path / 'b'} overlap (frames 8-9): {tmp_path / 'b'}: "
        "give each batch of one video once"
    )


def test_a_missing_batch_is_refused_naming_the_frames_no_batch_holds(tmp_path):
    text = merge_error(tmp_path, [("a", list(range(0, 10)), [1]), ("b", list(range(15, 20)), [1])])
    assert text == (
        f"frames 10-14 are in no batch given (between {tmp_path / 'a'} and {tmp_path / 'b'}): "
        f"{tmp_path / 'b'}: give every batch of the video"
    )


def narrowed(batch, width: int) -> None:
    """Make ``batch``'s masks ``width`` pixels wide (of another video)."""
    with np.load(batch / "masks.npz") as data:
        arrays = dict(data)
    arrays["shape"] = np.asarray([*arrays["shape"][:3], width])
    arrays["masks"] = arrays["masks"][:, :, : H * width // 8]
    np.savez_compressed(batch / "masks.npz", **arrays)


@pytest.mark.parametrize("batches", ["ab", "abc"])
def test_batches_of_different_frame_sizes_are_refused(tmp_path, batches):
    """Three sizes name the first two, like two."""
    for k, name in enumerate(batches):
        write_batch(tmp_path / name, list(range(5 * k, 5 * k + 5)), [1])
    narrowed(tmp_path / "b", W // 2)
    if "c" in batches:
        narrowed(tmp_path / "c", W // 4)
    with pytest.raises(UserError) as err:
        merge_video([tmp_path / name for name in batches], tmp_path / "merged")
    assert str(err.value) == (
        f"batches {tmp_path / 'a'} and {tmp_path / 'b'} differ in frame size "
        f"({W}x{H} and {W // 2}x{H}): {tmp_path / 'b'}: merge the batches of one video only"
    )


def test_a_batch_whose_masks_cannot_be_read_is_named_with_the_fix(tmp_path):
    write_batch(tmp_path / "a", list(range(0, 5)), [1])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "masks.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError) as err:
        merge_video([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")
    with pytest.raises(ValueError) as numpy_says:
        np.load(tmp_path / "b" / "masks.npz")
    assert str(err.value) == (  # numpy's reason, in its words
        f"cannot read batch masks ({brief(numpy_says.value)}): {tmp_path / 'b' / 'masks.npz'}: "
        "segment that batch again"
    )


def test_a_batch_archive_whose_masks_do_not_fit_its_frames_or_type_is_named(tmp_path):
    write_batch(tmp_path / "a", list(range(0, 5)), [1])
    with np.load(tmp_path / "a" / "masks.npz") as data:
        arrays = dict(data)
    (tmp_path / "short").mkdir()
    short = dict(arrays, frames=np.arange(0, 6))  # one frame more than the masks hold
    np.savez(tmp_path / "short" / "masks.npz", **short)
    with pytest.raises(UserError) as err:
        load_masks(tmp_path / "short" / "masks.npz")
    assert str(err.value) == (
        f"masks array (5, 1, {H * W // 8}) uint8 is not sam2flow's: "
        f"{tmp_path / 'short' / 'masks.npz'}"
    )
    (tmp_path / "other").mkdir()
    np.savez(tmp_path / "other" / "masks.npz", **dict(arrays, masks=arrays["masks"] * 1.0))
    with pytest.raises(UserError, match="float64 is not sam2flow's"):
        load_masks(tmp_path / "other" / "masks.npz")


def test_batches_of_three_videos_are_refused_naming_the_first_two(tmp_path):
    dirs = []
    try:
        for k, video in enumerate(["one.mp4", "two.mp4", "three.mp4"]):
            dirs.append(tmp_path / video.split(".")[0])
            write_batch(dirs[-1], list(range(5 * k, 5 * k + 5)), [1])
            (dirs[-1] / "memory.json").write_text(json.dumps({"video": video}))
        with pytest.raises(UserError) as err:
            merge_video(dirs, tmp_path / "merged")
    finally:
        for d in dirs:
            (d / "memory.json").unlink(missing_ok=True)
    assert str(err.value) == (
        f"batches of different videos: {dirs[0]} (one.mp4) and {dirs[1]} (two.mp4): "
        f"{dirs[1]}: merge the batches of one video only"
    )


def test_batches_of_different_videos_are_refused_past_batches_without_a_record(tmp_path):
    """Records name each batch's video; a batch without a readable record merges, and does
    not hide the two videos after it. (Only the record's ``video`` is read here: the
    records are removed at the end, as the suite checks every record left behind.)"""
    videos = {"a": "{ unreadable", "b": '{"video": ""}', "c": '{"video": "one.mp4"}'}
    dirs = []
    try:
        for k, name in enumerate("abcd"):
            write_batch(tmp_path / name, list(range(5 * k, 5 * k + 5)), [1])
            record = videos.get(name, '{"video": "one.mp4"}')
            (tmp_path / name / "memory.json").write_text(record)
            dirs.append(tmp_path / name)
        merge_video(dirs, tmp_path / "merged")  # one video named: merged
        (tmp_path / "d" / "memory.json").write_text('{"video": "two.mp4"}')
        with pytest.raises(UserError) as err:
            merge_video(dirs, tmp_path / "again")
    finally:
        for d in dirs:
            (d / "memory.json").unlink()
    assert str(err.value) == (
        f"batches of different videos: {tmp_path / 'c'} (one.mp4) and {tmp_path / 'd'} "
        f"(two.mp4): {tmp_path / 'd'}: merge the batches of one video only"
    )


def truncated_batch(tmp_path, frames: list[int], kept: int):
    """A batch archive whose masks array declares every frame but holds only ``kept``."""
    write_batch(tmp_path / "full", frames, [1, 2])
    with np.load(tmp_path / "full" / "masks.npz") as data:
        arrays = dict(data)
    path = tmp_path / "masks.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w") as f:
                if name == "masks":
                    np.lib.format.write_array_header_1_0(
                        f, np.lib.format.header_data_from_array_1_0(array)
                    )
                    f.write(array[:kept].tobytes())
                else:
                    np.lib.format.write_array(f, array)
    return path


def test_a_batchs_masks_are_read_for_the_frames_and_objects_asked_for(tmp_path):
    write_batch(tmp_path / "b", list(range(10, 20)), [1, 2, 3])
    path = tmp_path / "b" / "masks.npz"
    frames, objects, masks = read_masks(path, [17, 12], [3, 1])
    assert frames.tolist() == [12, 17] and objects.tolist() == [3, 1]
    for i, f in enumerate([12, 17]):
        assert np.array_equal(masks[i, 0], bar(f + 3)) and np.array_equal(masks[i, 1], bar(f + 1))
    assert read_masks(path, [], [2])[2].shape == (0, 1, H, W)
    frames, objects, masks = read_masks(path)
    assert frames.tolist() == list(range(10, 20)) and objects.tolist() == [1, 2, 3]


def test_a_batch_is_read_only_up_to_the_last_frame_asked_for(tmp_path):
    """Frames before where a damaged archive ends still read; the whole archive is named."""
    path = truncated_batch(tmp_path, list(range(10, 20)), kept=6)  # frames 10-15
    frames, _, masks = read_masks(path, [11, 14])
    assert frames.tolist() == [11, 14] and np.array_equal(masks[1, 0], bar(15))
    with pytest.raises(UserError) as err:
        read_masks(path, [11, 16])
    assert str(err.value) == f"masks archive is truncated: {path}: segment it again"


def filled_store(frames: list[int], objects: list[int]) -> MaskStore:
    """A batch's masks as segmenting leaves them: object k on frame f is ``bar(f + k)``."""
    store = MaskStore(frames, objects, H, W)
    for f in frames:
        masks = np.stack([bar(f + k) for k in objects])
        store.put(f, torch.from_numpy(np.where(masks, 5.0, -5.0)).float()[:, None])
    return store


def batch_record(frames: list[int], objects: list[int]) -> dict:
    """A record that fits the schema, for a batch of CPU frames."""
    from sam2flow.memory import UnitRecord

    return UnitRecord.not_run(len(frames), torch.device("cpu")).to_dict() | {
        "video": "v.mp4",
        "batch": "0003",
        "first_frame": frames[0],
        "last_frame": frames[-1],
        "objects": objects,
        "model": "sam2.1_hiera_tiny",
        "weights": "random",
        "image_size": 256,
        "seconds": 1.5,
        "frames_per_second": None,
        "frame_status": {"ok": len(frames) * len(objects)},
    }


def test_a_batchs_outputs_are_its_masks_table_and_record_each_readable(tmp_path):
    frames, objects = list(range(30, 40)), [1, 2]
    store, record = filled_store(frames, objects), batch_record(frames, objects)
    out = tmp_path / "results" / "v" / "0003"  # folders made as needed
    write_batch_outputs(out, store, record)
    write_batch_outputs(out, store, record)  # a batch segmented again replaces its outputs
    got_frames, got_objects, masks = load_masks(out / "masks.npz")
    assert got_frames.tolist() == frames and got_objects.tolist() == objects
    assert all(np.array_equal(masks[i, 1], bar(f + 2)) for i, f in enumerate(frames))
    table = pd.read_csv(out / "frames.csv")
    assert list(table.columns) == list(store.table().columns)  # no index column
    assert table[["frame", "object"]].values.tolist() == [[f, o] for f in frames for o in objects]
    assert np.allclose(table["area"], store.table()["area"])
    text = (out / "memory.json").read_text()
    assert json.loads(text) == record and text.startswith('{\n "')  # one field a line
    assert sorted(p.name for p in out.iterdir()) == ["frames.csv", "masks.npz", "memory.json"]


def test_the_merged_table_is_every_batch_row_in_frame_and_object_order(tmp_path):
    for name, frames, objects in [("b", range(10, 20), [2, 1]), ("a", range(0, 10), [1])]:
        out = tmp_path / name
        store = filled_store(list(frames), objects)
        store.mark([f for f in frames if f == 12], "skipped_oom")
        write_batch_outputs(out, store, batch_record(list(frames), objects))
    table = merge_video([tmp_path / "b", tmp_path / "a"], tmp_path / "merged")
    assert list(table.columns) == list(pd.read_csv(tmp_path / "a" / "frames.csv").columns)
    rows = [[f, 1] for f in range(10)] + [[f, o] for f in range(10, 20) for o in (1, 2)]
    assert table[["frame", "object"]].values.tolist() == rows
    assert table.index.tolist() == list(range(len(rows)))
    tracks = pd.read_csv(tmp_path / "merged" / "tracks.csv")
    assert list(tracks.columns) == COLUMNS  # no index column
    assert tracks[["frame", "object", "status"]].equals(table[["frame", "object", "status"]])
    status = maskfile.read_status(tmp_path / "merged" / "masks.h5")
    assert status[12].tolist() == ["skipped_oom", "skipped_oom"]  # padded slots keep it
    assert status[0].tolist() == ["ok", "no_prompt"]


def test_batches_sharing_one_frame_overlap(tmp_path):
    text = merge_error(tmp_path, [("a", list(range(0, 10)), [1]), ("b", list(range(9, 20)), [1])])
    assert text.startswith(f"batches {tmp_path / 'a'} and {tmp_path / 'b'} overlap (frames 9-9)")


def test_a_batch_asked_for_no_frame_gives_the_types_a_video_file_gives(tmp_path, merged):
    """Frames as int64 and masks as bool, also when none is asked for or none is held."""
    write_batch(tmp_path / "one", list(range(5)), [1, 2])
    for got in (read_masks(tmp_path / "one" / "masks.npz", [], [2]), read_masks(merged, [], [2])):
        frames, objects, masks = got
        assert (frames.dtype, frames.shape, objects.tolist()) == (np.int64, (0,), [2])
        assert (masks.dtype, masks.shape) == (bool, (0, 1, H, W))


def test_masks_of_an_odd_frame_size_come_back_whole_from_a_batch_and_its_video(tmp_path):
    """5 x 7 = 35 pixels: the packed bytes hold 5 bits of padding, which are not pixels."""
    frames, objects = [0, 1], [1]
    expected = np.zeros((2, 1, 5, 7), bool)
    expected[0, 0, 4, 2:] = True  # up to the last pixel
    expected[1, 0, 0, 0] = expected[1, 0, 4, 6] = True
    store = MaskStore(frames, objects, 5, 7)
    for f in frames:
        store.put(f, torch.from_numpy(np.where(expected[f], 5.0, -5.0)).float()[:, None])
    write_batch_outputs(tmp_path / "0000", store, batch_record(frames, objects))
    merge_video([tmp_path / "0000"], tmp_path / "merged")
    for path in (tmp_path / "0000" / "masks.npz", tmp_path / "merged" / "masks.h5"):
        assert np.array_equal(read_masks(path)[2], expected), path


def test_a_video_merges_into_new_folders_and_again_over_its_outputs(tmp_path):
    """A rerun (a batch segmented again, the overlay redone) merges over the last merge."""
    out = tmp_path / "results" / "v"
    write_batch(tmp_path / "0000", list(range(5)), [1])
    merge_video([tmp_path / "0000"], out)
    write_batch(tmp_path / "0001", list(range(5, 9)), [1])
    merge_video([tmp_path / "0000", tmp_path / "0001"], out)
    assert load_masks(out / "masks.h5")[0].tolist() == list(range(9))
    assert pd.read_csv(out / "tracks.csv")["frame"].tolist() == list(range(9))


def test_the_tables_write_six_significant_digits(tmp_path):
    """Areas as integers and scores to 6 digits, in a batch's table and the video's, also
    when a batch's table holds more (files a third the size; 6 digits place a centroid to
    a hundredth of a pixel in an 8K frame)."""
    write_batch_outputs(tmp_path / "a", filled_store([0, 1], [1]), batch_record([0, 1], [1]))
    write_batch(tmp_path / "b", [2, 3], [1])  # a table written in full precision
    merge_video([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")
    for table in (tmp_path / "a" / "frames.csv", tmp_path / "merged" / "tracks.csv"):
        rows = table.read_text().splitlines()
        assert rows[0] == ",".join(COLUMNS) and len(rows) > 2
        for row in rows[1:]:
            area, score_text = row.split(",")[3], row.split(",")[-1]
            # 5.0 at every pixel of a mask: a score of 0.9933071490757153
            assert (area, score_text) == (str(4 * H), "0.993307"), (table, row)


def damaged_batch(tmp_path, **changes):
    """A batch of frames 3-7 whose masks.npz fields are ``changes`` (None: left out)."""
    batch = tmp_path / "b"
    write_batch(batch, list(range(3, 8)), [1, 2])
    with np.load(batch / "masks.npz") as data:
        arrays = dict(data)
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez_compressed(batch / "masks.npz", **arrays)
    return batch


def layout_error(batch) -> str:
    with pytest.raises(UserError) as err:
        read_batch_layout(batch)
    return str(err.value)


DAMAGED = "batch masks are damaged"


@pytest.mark.parametrize(
    "changes, said",
    [
        ({"status": None, "shape": None}, "cannot read batch masks (no shape, status)"),
        ({"frames": np.array([3, 4, 6, 5, 7])}, f"{DAMAGED} (frames 3..7 out of order)"),
        ({"frames": np.array([], int)}, f"{DAMAGED} (no frames)"),
        (
            {"status": np.array([["ok", "ok"]] * 4)},
            f"{DAMAGED} (4 status rows, shape [5, 2, {H}, {W}], for 5 frames of 2 objects)",
        ),
        (
            {"object_ids": np.array([1])},
            f"{DAMAGED} (5 status rows, shape [5, 2, {H}, {W}], for 5 frames of 1 objects)",
        ),
    ],
)
def test_each_way_a_batchs_archive_is_damaged_is_one_line_naming_it(tmp_path, changes, said):
    batch = damaged_batch(tmp_path, **changes)
    assert layout_error(batch) == f"{said}: {batch / 'masks.npz'}: segment that batch again"


def test_each_way_a_batchs_frame_table_is_damaged_is_one_line_naming_it(tmp_path):
    batch = damaged_batch(tmp_path)
    table = batch / "frames.csv"
    rows = table.read_text().splitlines()
    table.write_text("\n".join(rows[:-2]) + "\n")  # its last frame's rows lost
    assert layout_error(batch) == (
        f"the batch's frame table lists other frames than its masks (3-7): {table}: "
        "segment that batch again"
    )
    header = rows[0].split(",")
    table.write_text(",".join(c for c in header if c not in ("object", "status")) + "\n")
    assert layout_error(batch) == (
        f"cannot read the batch's frame table (no column object, status): {table}: "
        "segment that batch again"
    )
    table.write_text("")
    assert layout_error(batch).startswith("cannot read the batch's frame table (No columns ")
    assert read_batch_layout(damaged_batch(tmp_path / "whole")) == ([3, 4, 5, 6, 7], [1, 2],
                                                                     (5, 2, H, W))  # fmt: skip


def test_batches_that_start_after_frame_0_are_refused_naming_the_first(tmp_path):
    write_batch(tmp_path / "a", list(range(4, 9)), [1])
    with pytest.raises(UserError) as err:
        merge_video([tmp_path / "a"], tmp_path / "merged")
    assert str(err.value) == (
        f"frames 0-3 are in no batch given (the first starts at frame 4): {tmp_path / 'a'}: "
        "give every batch of the video, from its first"
    )


def test_batches_of_one_name_but_of_two_videos_contents_are_refused(tmp_path):
    """A video replaced under its name between two batches: the records tell them apart."""
    dirs = [tmp_path / "a", tmp_path / "b"]
    for k, (d, identity) in enumerate(zip(dirs, ["10:aaa", "12:bbb"], strict=True)):
        write_batch(d, list(range(5 * k, 5 * k + 5)), [1])
        (d / "memory.json").write_text(json.dumps({"video": "v", "video_identity": identity}))
    with pytest.raises(UserError) as err:
        merge_video(dirs, tmp_path / "merged")
    for d in dirs:  # records of a test's own making, not a batch's
        (d / "memory.json").unlink()
    assert str(err.value) == (
        f"batches of different videos: {dirs[0]} and {dirs[1]} (other content): {dirs[1]}: "
        "merge the batches of one video only"
    )
