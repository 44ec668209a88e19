"""The frame source's parts: which frames it decodes ahead of the model and in what order,
OpenCV's decoder, and a batch folder checked against its manifest."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
import torch

from sam2flow.errors import UserError
from sam2flow.frame_folders import Extraction, check_batch_frames
from sam2flow.frame_source import FrameSource, opencv_frame, sam2_frame

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def image(path, bgr, size=(30, 40)):
    cv2.imwrite(str(path), np.full((*size, 3), bgr, np.uint8))
    return path


def recording_source(folder, seconds: float = 0.0, **options) -> FrameSource:
    """A source over 12 frames whose decoder records what it decodes (and in which thread,
    and when it ends) and answers a tensor holding the frame's local index."""
    paths = [image(folder / f"{i:05d}.png", (i, i, i)) for i in range(12)]
    options.setdefault("threads", 1)  # one thread: the decoding order is the order asked
    src = FrameSource(paths, image_size=16, **options)
    src.decoded, src.threads, src.ended = [], set(), []

    def decode(path, size):
        src.decoded.append(paths.index(path))
        src.threads.add(threading.current_thread().name)
        time.sleep(seconds)
        src.ended.append(paths.index(path))
        return torch.full((3, size, size), float(paths.index(path)))

    src._decode = decode
    return src


@pytest.fixture
def source(tmp_path):
    src = recording_source(tmp_path, read_ahead=2)
    yield src
    src.close()


def decoded_when_idle(src, count: int) -> list[int]:
    """What the source decoded, once ``count`` decodes have happened (5 s at most)."""
    deadline = time.monotonic() + 5
    while len(src.decoded) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # nothing more may come
    return src.decoded


def test_the_next_frames_are_decoded_ahead_in_the_direction_of_travel(source):
    assert float(source[5][0, 0, 0]) == 5
    assert decoded_when_idle(source, 3) == [5, 6, 7]
    assert float(source[6][0, 0, 0]) == 6  # read ahead: not decoded again
    assert decoded_when_idle(source, 4) == [5, 6, 7, 8]
    assert float(source[3][0, 0, 0]) == 3  # backwards now: 2 and 1 ahead
    assert decoded_when_idle(source, 7) == [5, 6, 7, 8, 3, 2, 1]
    assert float(source[2][0, 0, 0]) == 2
    assert decoded_when_idle(source, 8) == [5, 6, 7, 8, 3, 2, 1, 0]


def test_the_first_frame_read_decodes_ahead_forwards(source):
    source[0]
    assert decoded_when_idle(source, 3) == [0, 1, 2]


def test_a_frame_read_again_keeps_the_direction_of_travel(source):
    source[5]
    assert decoded_when_idle(source, 3) == [5, 6, 7]
    source[5]
    assert decoded_when_idle(source, 4) == [5, 6, 7, 5]


def test_eight_frames_are_read_ahead_unless_told_otherwise(tmp_path):
    src = recording_source(tmp_path)
    try:
        src[0]
        assert decoded_when_idle(src, 9) == list(range(9))
    finally:
        src.close()


def test_one_named_reader_thread_decodes_and_is_done_when_closed(tmp_path):
    """One thread keeps the decoding order (and a stack dump names it: ``frames_0``);
    ``close`` returns once the decode in progress has ended."""
    src = recording_source(tmp_path, seconds=0.1, read_ahead=3)
    src[0]
    time.sleep(0.15)  # frame 1 is being decoded
    src.close()
    assert src.threads == {"frames_0"}
    assert src.ended == src.decoded and not any(
        t.name.startswith("frames") for t in threading.enumerate()
    )


def test_threads_decode_ahead_at_once_each_frame_once(tmp_path):
    src = recording_source(tmp_path, seconds=0.2, read_ahead=4, threads=4)
    try:
        src[0]
        assert sorted(decoded_when_idle(src, 5)) == [0, 1, 2, 3, 4]
        assert len(src.threads) == 4 and src.workers == 4
    finally:
        src.close()
    assert not any(t.name.startswith("frames") for t in threading.enumerate())


@pytest.mark.parametrize("decoder", ["sam2", "opencv"])
def test_the_frames_are_the_same_whatever_the_number_of_threads(tmp_path, decoder):
    """Forward from the middle, then backward: the order SAM 2 asks in."""
    rng = np.random.default_rng(1)
    paths = []
    for i in range(16):
        paths.append(tmp_path / f"{i:05d}.jpg")
        cv2.imwrite(str(paths[-1]), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    order = [*range(8, 16), *range(7, -1, -1)]
    seen = {}
    for threads in (1, 2, 4):
        src = FrameSource(paths, image_size=32, decoder=decoder, threads=threads)
        try:
            seen[threads] = [src[i] for i in order]
        finally:
            src.close()
    for threads in (2, 4):
        assert all(torch.equal(a, b) for a, b in zip(seen[1], seen[threads], strict=True))


def test_indexes_count_from_the_end_and_stop_at_its_length(source):
    assert float(source[-1][0, 0, 0]) == 11 and float(source[-12][0, 0, 0]) == 0
    for outside in (12, -13):
        with pytest.raises(IndexError):
            source[outside]
    with pytest.raises(IndexError) as err:
        source[12]
    assert str(err.value) == "12"  # the index asked for, not a list's message
    assert decoded_when_idle(source, 2)[:2] == [11, 0]


def test_the_decoder_asked_for_is_the_one_used(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "noise.png"
    cv2.imwrite(str(path), noise)
    for decoder, decode, other in [
        ("opencv", opencv_frame, sam2_frame),
        ("sam2", sam2_frame, opencv_frame),
    ]:
        src = FrameSource([path], image_size=24, decoder=decoder)
        try:
            tensor = src[0]
        finally:
            src.close()
        assert torch.equal(tensor, decode(path, 24)) and not torch.equal(tensor, other(path, 24))


def test_nothing_is_read_ahead_when_asked_for_none(tmp_path):
    paths = [image(tmp_path / f"{i}.png", (0, 0, 0)) for i in range(4)]
    src = FrameSource(paths, image_size=16, read_ahead=-3)
    try:
        assert src.read_ahead == 0 and src.image_size == 16
        src.decoded = []
        src._decode = lambda path, size: src.decoded.append(path) or torch.zeros(3, size, size)
        src[1]
        assert decoded_when_idle(src, 1) == [paths[1]]
    finally:
        src.close()


def test_a_source_needs_frames_and_a_known_decoder(tmp_path):
    with pytest.raises(ValueError, match="^FrameSource needs at least one frame$"):
        FrameSource([], image_size=16)
    with pytest.raises(ValueError) as err:
        FrameSource([image(tmp_path / "0.png", (0, 0, 0))], image_size=16, decoder="pil")
    assert str(err.value) == "decoder must be one of sam2, opencv, got 'pil'"


def test_the_opencv_decoder_gives_rgb_in_imagenet_units_at_the_model_size(tmp_path):
    red = image(tmp_path / "red.png", (0, 0, 255))  # BGR on disk
    src = FrameSource([red], image_size=24, decoder="opencv")
    try:
        tensor = src[0]
    finally:
        src.close()
    assert tensor.shape == (3, 24, 24) and tensor.dtype == torch.float32
    expected = (np.array([1.0, 0.0, 0.0]) - MEAN) / STD
    np.testing.assert_allclose(tensor[:, 5, 7].numpy(), expected, rtol=1e-6)
    assert (src.video_height, src.video_width) == (30, 40)


def test_the_opencv_decoder_names_a_frame_it_cannot_read(tmp_path):
    bad = tmp_path / "0000007.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(UserError) as err:
        opencv_frame(bad, 16)
    assert str(err.value) == f"cannot read frame: {bad}: extract the frames again"


def test_the_opencv_decoder_refuses_a_jpeg_cut_short_that_it_would_decode(tmp_path):
    """OpenCV decodes the first half of a JPEG without an error, the rest grey."""
    whole = tmp_path / "0000006.jpg"
    cv2.imwrite(str(whole), np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8))
    cut = tmp_path / "0000007.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert cv2.imread(str(cut)) is not None  # what the check is for
    with pytest.raises(UserError) as err:
        opencv_frame(cut, 16)
    assert str(err.value) == f"cannot read frame (JPEG cut short): {cut}: extract the frames again"
    assert opencv_frame(whole, 16).shape == (3, 16, 16)
    shouting = cut.rename(tmp_path / "0000007.JPEG")  # SAM 2's loader takes .jpeg, any case
    with pytest.raises(UserError, match=r"^cannot read frame \(JPEG cut short\): "):
        opencv_frame(shouting, 16)


def test_decoding_threads_are_as_asked_but_no_more_than_frames_to_decode():
    from sam2flow.frame_source import decode_threads

    assert [decode_threads(4, 8), decode_threads(16, 8), decode_threads(0, 8)] == [4, 9, 1]
    assert decode_threads(None, 0) == 1 and decode_threads(9, 8) == 9


def manifest(batches) -> Extraction:
    return Extraction("v.mp4", 30, 4, 4, 25.0, 10, 95, batches)


@pytest.mark.parametrize(
    "frames, problem",
    [
        ([10, 11, 13, 14], "frame 12 is missing (1 missing, 0 extra"),
        ([9, 10, 11, 12, 13, 14], "frame 9 does not belong (0 missing, 1 extra"),
        ([10, 11, 12, 15, 16], "frame 13 is missing (2 missing, 2 extra"),
    ],
)
def test_a_batch_folder_holds_exactly_the_frames_its_manifest_lists(tmp_path, frames, problem):
    batch = tmp_path / "0001"
    check_batch_frames(list(range(10, 15)), batch, manifest({"0001": [10, 14]}))
    check_batch_frames(frames, tmp_path / "0009", manifest({"0001": [10, 14]}))  # not listed
    with pytest.raises(UserError) as err:
        check_batch_frames(frames, batch, manifest({"0001": [10, 14]}))
    assert str(err.value) == (
        f"{problem}; its frames.json lists frames 10-14): {batch}: extract the video again "
        "(sam2flow extract, or delete the video's results folder)"
    )


def test_sams_own_decoder_gives_rgb_in_imagenet_units_at_the_model_size(tmp_path):
    src = FrameSource([image(tmp_path / "red.png", (0, 0, 255))], image_size=24)
    try:
        tensor = src[0]
    finally:
        src.close()
    assert tensor.shape == (3, 24, 24)
    np.testing.assert_allclose(tensor[:, 5, 7].numpy(), (np.array([1.0, 0, 0]) - MEAN) / STD, 1e-6)


def test_a_frame_that_cannot_be_read_is_named_with_the_fix(tmp_path):
    good = image(tmp_path / "0000000.png", (0, 0, 0))
    bad = tmp_path / "0000001.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    src = FrameSource([good, bad], image_size=16)
    try:
        with pytest.raises(UserError) as err:
            src[1]
    finally:
        src.close()
    assert str(err.value) == (  # PIL's reason, in its words
        f"cannot read frame (cannot identify image file '{bad}'): {bad}: extract the frames again"
    )
    with pytest.raises(UserError) as err:
        FrameSource([bad], image_size=16)  # its size is read first
    assert str(err.value) == f"cannot read frame: {bad}: extract the frames again"


def test_a_frame_folder_that_is_not_there_is_named():
    from sam2flow.frame_folders import frame_paths

    with pytest.raises(UserError) as err:
        frame_paths("/nowhere/0003")
    assert str(err.value) == "frame folder not found: /nowhere/0003: check the path"
