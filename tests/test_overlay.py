"""The overlay's parts: masks drawn over a frame, and the H.264 writer, each through what
it produces (pixels, and the stream read back)."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from sam2flow.overlay import _COLOURS, H264Writer, draw_masks, read_ahead

from conftest import video_of


def drawn_whole_frame(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The oracle: each mask blended at half strength over the whole frame, then its
    outline, 2 pixels wide (draw_masks works on each mask's bounding box only)."""
    out = image.copy()
    for k, mask in enumerate(masks):
        colour = _COLOURS[k % len(_COLOURS)]
        blend = cv2.addWeighted(out, 0.5, np.full_like(out, colour), 0.5, 0)
        out[mask] = blend[mask]
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(out, contours, -1, colour, 2)
    return out


def scene() -> tuple[np.ndarray, np.ndarray]:
    """A textured 48 x 64 frame and four objects: none, a disc, a one-pixel-wide line and a
    one-pixel-high line (bounding boxes of width or height 1)."""
    image = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    masks = np.zeros((4, 48, 64), dtype=bool)
    cv2.circle(masks[1].view(np.uint8), (30, 20), 9, 1, -1)
    masks[2, 5:40, 50] = True
    masks[3, 44, 3:60] = True
    return image, masks


def test_masks_are_drawn_as_over_the_whole_frame_after_an_empty_one():
    image, masks = scene()
    drawn = draw_masks(image, masks)
    assert np.array_equal(drawn, drawn_whole_frame(image, masks))
    assert not np.array_equal(drawn[masks[1]], image[masks[1]])
    assert np.array_equal(image, scene()[0])  # the frame handed in is left as it was


def test_masks_of_zeros_and_ones_draw_like_boolean_masks():
    image, masks = scene()
    assert np.array_equal(draw_masks(image, masks.astype(np.uint8)), draw_masks(image, masks))
    assert np.array_equal(draw_masks(image, masks.astype(np.float32)), draw_masks(image, masks))


def test_no_masks_leave_the_frame_as_it_is():
    image, masks = scene()
    assert np.array_equal(draw_masks(image, masks[:1]), image)


def written(path):
    with av.open(str(path)) as played:
        stream = played.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in played.decode(stream)]
        return stream, frames


@pytest.mark.parametrize("width, height", [(64, 48), (63, 47), (64, 47), (63, 48)])
def test_the_writer_makes_browser_playable_h264_of_any_frame_size(tmp_path, width, height):
    path = tmp_path / "overlay.part"  # atomic writes use names without .mp4
    grey = np.full((height, width, 3), 128, np.uint8)
    grey[:, -1] = 200  # the last column and row are copied into the padding
    grey[-1, :] = 200
    with H264Writer(path, 30000 / 1001, width, height) as writer:
        for _ in range(5):
            writer.write(grey)
    assert path.read_bytes()[4:8] == b"ftyp"  # an MP4
    stream, frames = written(path)
    assert (stream.codec_context.name, stream.format.name) == ("h264", "yuv420p")
    assert (stream.width, stream.height) == (width + width % 2, height + height % 2)
    assert stream.average_rate == Fraction(30000, 1001) and len(frames) == 5
    padded = frames[0].astype(int)
    assert abs(padded[: height - 4, : width - 4] - 128).max() <= 3  # lossy, away from edges
    assert abs(padded[-1, :-4] - 200).max() <= 8 and abs(padded[:-4, -1] - 200).max() <= 8


def test_the_writer_encodes_fast_at_a_set_quality(tmp_path):
    """x264 writes its settings into the stream: ultrafast has no CABAC; crf 23."""
    with H264Writer(tmp_path / "o.mp4", 25, 32, 32) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    data = (tmp_path / "o.mp4").read_bytes()
    assert b"cabac=0" in data and b"crf=23.0" in data


def sheet_as_specified(video, masks: np.ndarray, h: int, w: int) -> np.ndarray:
    """The contact sheet as the README describes it: 12 frames evenly spaced from the first
    to the last (or every frame of a shorter video), each at the masks' size with its masks
    drawn and its number written top left, 320 pixels wide, 4 to a row."""
    n = len(masks)
    picks = set(np.linspace(0, n - 1, num=min(12, n)).round().astype(int).tolist())
    cap = cv2.VideoCapture(str(video))
    tiles = []
    for f in range(n):
        img = cv2.resize(cap.read()[1], (w, h))
        img = draw_masks(img, masks[f])
        cv2.putText(img, str(f), (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
        if f in picks:
            tiles.append(cv2.resize(img, (320, int(320 * h / w))))
    th = tiles[0].shape[0]
    sheet = np.zeros((-(-len(tiles) // 4) * th, 4 * 320, 3), np.uint8)
    for j, tile in enumerate(tiles):
        r, c = divmod(j, 4)
        sheet[r * th : (r + 1) * th, c * 320 : (c + 1) * 320] = tile
    return sheet


def ffv1_video(path, frames: int, h: int, w: int, image=None):
    """A losslessly coded video at 12 frames/s: ``image`` on every frame, or random ones."""
    rng = np.random.default_rng(5)
    images = (
        rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if image is None else image
        for _ in range(frames)
    )
    return video_of(path, images, 12, "FFV1")


def mask_file(path, frames, masks: np.ndarray):
    """``masks.h5`` holding ``masks`` (frames x 2 objects x H x W) for ``frames``."""
    from sam2flow.maskfile import MaskFileWriter

    n, k, h, w = masks.shape
    with MaskFileWriter(path, [1, 2], h, w) as writer:
        packed = np.packbits(masks.reshape(n, k, -1), axis=-1)
        writer.append(np.asarray(frames), packed, np.full((n, k), "ok"))
    return path


@pytest.mark.parametrize(
    "frames, scale, h, w", [(30, 1, 48, 64), (7, 2, 48, 64), (5, 1, 47, 63), (1, 1, 48, 64)]
)
def test_the_overlay_and_sheet_show_each_frames_masks_at_the_videos_rate(
    tmp_path, frames, scale, h, w
):
    """Masks at 48 x 64 or 47 x 63 (pixels not a multiple of 8, odd sizes); the video at
    that size or twice it (its frames are scaled); a video of one frame, a sheet of one."""
    from sam2flow.overlay import render_overlay

    video = ffv1_video(tmp_path / "v.avi", frames, h * scale, w * scale)
    masks = np.zeros((frames, 2, h, w), dtype=bool)
    for f in range(frames):
        masks[f, 0, 5 : 15 + f % 20, 10:30] = True
        masks[f, 1, 30:40, 2 * f % 60 : 2 * f % 60 + 4] = True
    mask_file(tmp_path / "masks.h5", range(frames), masks)
    render_overlay(video, tmp_path / "masks.h5", tmp_path / "o.mp4", tmp_path / "s.png")
    sheet = cv2.imread(str(tmp_path / "s.png"))
    assert np.array_equal(sheet, sheet_as_specified(video, masks, h, w))
    stream, decoded = written(tmp_path / "o.mp4")
    assert len(decoded) == frames and stream.average_rate == 12


def test_frames_before_the_first_masks_are_not_drawn_on(tmp_path):
    """Masks from frame 3 of a grey 6-frame video: frames 0-2 stay grey under the label."""
    from sam2flow.overlay import render_overlay

    video = ffv1_video(tmp_path / "v.avi", 6, 48, 64, np.full((48, 64, 3), 90, np.uint8))
    masks = np.zeros((3, 2, 48, 64), dtype=bool)
    masks[:, 0, 30:, :] = True
    mask_file(tmp_path / "masks.h5", [3, 4, 5], masks)
    render_overlay(video, tmp_path / "masks.h5", tmp_path / "o.mp4", tmp_path / "s.png")
    _, decoded = written(tmp_path / "o.mp4")
    change = [int(np.abs(img[34:44, 4:60].astype(int) - 90).max()) for img in decoded]
    assert max(change[:3]) <= 6 and min(change[3:]) >= 40, change


class Capture:
    """A stand-in for ``cv2.VideoCapture``: ``frames`` frames (numbered in their first
    pixel), each taking ``seconds`` to decode, then an error if ``fails``."""

    def __init__(self, frames: int, seconds: float = 0.0, fails: bool = False):
        self.left, self.seconds, self.fails, self.reads = frames, seconds, fails, 0

    def read(self):
        time.sleep(self.seconds)
        self.reads += 1
        if self.left == 0:
            if self.fails:
                raise OSError("the disk went away")
            return False, None
        self.left -= 1
        return True, np.full((2, 2, 3), self.reads, np.uint8)


def test_read_ahead_gives_every_frame_in_order():
    assert [int(img[0, 0, 0]) for img in read_ahead(Capture(9))] == list(range(1, 10))


def test_a_decoding_error_reaches_the_caller():
    frames = read_ahead(Capture(3, fails=True))
    assert [int(next(frames)[0, 0, 0]) for _ in range(3)] == [1, 2, 3]
    with pytest.raises(OSError, match="the disk went away"):
        next(frames)


def test_stopping_early_ends_the_decoder_while_it_is_decoding():
    before = threading.active_count()
    frames = read_ahead(Capture(1000, seconds=0.15))
    next(frames)
    frames.close()  # waits for the decoder, which is in the middle of a slow read
    assert threading.active_count() == before


def overlay_error(tmp_path, video_frames: int, mask_frames: range, size=(48, 64)) -> str:
    from sam2flow.errors import UserError
    from sam2flow.overlay import render_overlay

    video = ffv1_video(tmp_path / "v.avi", video_frames, *size)
    masks = np.zeros((len(mask_frames), 2, 48, 64), dtype=bool)
    mask_file(tmp_path / "masks.h5", mask_frames, masks)
    with pytest.raises(UserError) as err:
        render_overlay(video, tmp_path / "masks.h5", tmp_path / "o.mp4", tmp_path / "s.png")
    return str(err.value)


@pytest.mark.parametrize(
    "video_frames, mask_frames, said",
    [
        (8, range(0, 5), "the video has 8 frames but the masks cover frames 0-4 (a last batch is "
                         "missing?)"),
        (4, range(0, 5), "the video has 4 frames but the masks cover frames 0-4"),
        (6, range(2, 5), "the video has 6 frames but the masks cover frames 2-4 (a last batch is "
                         "missing?)"),
    ],
)  # fmt: skip
def test_a_video_of_another_length_than_its_masks_is_named(
    tmp_path, video_frames, mask_frames, said
):
    video = tmp_path / "v.avi"
    assert overlay_error(tmp_path, video_frames, mask_frames) == (
        f"{said}: {video}: give the video these masks were made from, and every batch of it"
    )


def test_a_video_of_another_shape_than_its_masks_is_named_and_one_scaled_is_said(tmp_path, caplog):
    from sam2flow.overlay import render_overlay

    assert overlay_error(tmp_path, 3, range(3), size=(48, 80)) == (
        f"the video is 80x48 but the masks are 64x48: {tmp_path / 'v.avi'}: "
        "give the video these masks were made from"
    )
    video = ffv1_video(tmp_path / "big.avi", 3, 96, 128)  # the masks' shape, twice their size
    render_overlay(video, tmp_path / "masks.h5", tmp_path / "o.mp4", tmp_path / "s.png")
    said = [r.getMessage() for r in caplog.records if r.name == "sam2flow.overlay"]
    assert said == [f"{video}: the video is 128x96, the masks 64x48: scaled"]  # once, not a frame
