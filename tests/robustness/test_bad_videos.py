"""Bad and odd videos: a one-line message naming the file, or frames decoded right."""

import shutil
import subprocess

import numpy as np
import pytest

from sam2flow.errors import UserError
from sam2flow.extract import extract_batches
from sam2flow.frame_folders import list_frames, read_manifest

from conftest import listed_in_troubleshooting, shared_file, write_video

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


def one_line_error(video, tmp_path):
    with pytest.raises(UserError) as info:
        extract_batches(video, tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message and str(video) in message
    assert not (tmp_path / "out" / "frames.json").exists()
    return message


def test_truncated_real_video(tmp_path):
    data = shared_file("bedroom.mp4").read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    try:
        result = extract_batches(half, tmp_path / "ok")
    except UserError as exc:  # the index (moov) was cut off: nothing decodable
        assert "half.mp4" in str(exc) and "\n" not in str(exc)
    else:  # the index survived: what decodes is extracted and counted
        assert 0 < result.frames <= 200
        assert len(list_frames(tmp_path / "ok" / "0000")) == min(result.frames, 400)


def test_zero_byte_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    assert "empty" in one_line_error(empty, tmp_path)


def test_text_file_named_mp4(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("minutes of the lab meeting\n" * 100)
    one_line_error(fake, tmp_path)


@needs_ffmpeg
def test_video_with_zero_decodable_frames(tmp_path):
    audio_only = tmp_path / "audio.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", audio_only)
    one_line_error(audio_only, tmp_path)


def test_missing_file(tmp_path):
    assert "not found" in one_line_error(tmp_path / "nope.mp4", tmp_path)


def test_yuv444p_real_video_decodes_every_frame(tmp_path):
    result = extract_batches(shared_file("m3v1mp4.mp4"), tmp_path / "out", batch_size=1000)
    assert result.frames == 2330 and (result.height, result.width) == (480, 640)
    assert list(result.batches) == ["0000", "0001", "0002"]


@needs_ffmpeg
def test_odd_frame_size(tmp_path):
    video = tmp_path / "odd.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=641x479:rate=5:duration=1", "-c:v", "ffv1", video)
    result = extract_batches(video, tmp_path / "out")
    assert (result.height, result.width) == (479, 641) and result.frames == 5


@needs_ffmpeg
def test_variable_frame_rate(tmp_path):
    video = tmp_path / "vfr.mkv"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=30:duration=2",
        "-vf",
        "setpts='if(lt(N,30),N/30/TB,(30+(N-30)*3)/30/TB)'",
        "-fps_mode",
        "vfr",
        video,
    )
    result = extract_batches(video, tmp_path / "out")
    assert result.frames == 60  # every frame once: counted by decoding, not by fps x time


@needs_ffmpeg
def test_rotated_phone_video_is_upright(tmp_path):
    src = tmp_path / "src.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1", "-pix_fmt", "yuv420p", src
    )
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-i", src, "-c", "copy", "-metadata:s:v:0", "rotate=90", rotated)
    result = extract_batches(rotated, tmp_path / "out")
    assert (result.height, result.width) == (160, 120)  # rotation metadata applied


def test_manifest_counts_what_was_decoded(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=7)
    extract_batches(video, tmp_path / "out", batch_size=3)
    assert read_manifest(tmp_path / "out").frames == 7


@needs_ffmpeg
def test_a_video_shorter_than_its_container_declares_is_kept_with_a_warning(tmp_path, caplog):
    """Cut a 300-frame MP4 (index at the front) short: every decodable frame is extracted,
    and the shortfall is a warning, in the manifest and (through it) in each batch record."""
    full = tmp_path / "full.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30",
        "-frames:v",
        300,
        "-c:v",
        "libx264",
        "-movflags",
        "+faststart",
        full,
    )
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    result = extract_batches(cut, tmp_path / "frames", batch_size=100)
    assert 0 < result.frames < 300 and result.declared_frames == 300
    assert read_manifest(tmp_path / "frames").declared_frames == 300
    warning = f"{result.frames} frames decoded but the container declares 300"
    met = [r.getMessage() for r in caplog.records if warning in r.getMessage()]
    assert met == [f"{result.shortfall()}; every decoded frame is kept"] and "cut.mp4" in met[0]
    listed_in_troubleshooting(met[0])
    assert extract_batches(full, tmp_path / "full").shortfall() is None


@pytest.mark.parametrize(
    "kind, name, form", [("png", "still.mp4", "PNG"), ("image2", "still.tga", "TGA")]
)
def test_a_picture_given_as_a_video_is_named_with_what_it_is(tmp_path, kind, name, form):
    """OpenCV opens a single picture as a one-frame video; FFmpeg's demuxer says what it is
    (by its content, or for a TGA, which has no signature, by its name)."""
    from PIL import Image

    picture = tmp_path / name
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(picture, format=form)
    assert one_line_error(picture, tmp_path) == (
        f"a still image ({kind}), not a video: {picture}: "
        "give the video file (sam2flow segment --frames takes a folder of images)"
    )
