"""A batch whose frames a finished run deleted is decoded again by seeking to it: only its
frames, the same JPEG bytes as the first extraction, and a seek that lands elsewhere is
caught by the frame digests and replaced by decoding from the start."""

from __future__ import annotations

import json
import shutil

import pytest

from sam2flow.errors import UserError
from sam2flow.frames import (
    CARRY_DIR,
    extract_batches,
    frame_file,
    restore_batch,
    restore_frame,
    reuse_or_extract,
)

from conftest import ffmpeg_video, listed_in_troubleshooting, shared_file

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def contents(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def deleted(root, batch) -> dict[str, bytes]:
    """Delete a batch folder (as temp() does), returning what it held."""
    before = contents(root / batch)
    shutil.rmtree(root / batch)
    return before


def test_one_batch_of_2000_frames_is_decoded_again_alone_after_a_seek(tmp_path):
    video = ffmpeg_video(tmp_path / "long.mp4", 2000)
    root = tmp_path / "frames"
    extract_batches(video, root, batch_size=400)
    before = deleted(root, "0003")
    done = restore_batch(root, "0003")
    assert done.seeked and done.frames_decoded == 400  # its frames, none before them
    assert contents(root / "0003") == before  # byte for byte
    assert not list(root.glob(".*.tmp"))


@pytest.mark.parametrize("name, batch", [("bedroom.mp4", "0002"), ("m3v1mp4.mp4", "0004")])
def test_batches_of_the_shared_videos_come_back_byte_for_byte(tmp_path, name, batch):
    root = tmp_path / "frames"
    extract_batches(shared_file(name), root, batch_size=60 if name == "bedroom.mp4" else 400)
    before = deleted(root, batch)
    done = restore_batch(root, batch)
    assert contents(root / batch) == before
    assert done.seeked, "the shared videos seek frame-exactly"


def test_a_variable_frame_rate_video_comes_back_byte_for_byte(tmp_path):
    """Timestamps that jump (variable frame rate): a seek computed from the frame rate may
    land elsewhere; the digests notice, and the batch is decoded from the start instead."""
    jump = "setpts='if(lt(N,150),N,N+40)/25/TB'"
    video = ffmpeg_video(tmp_path / "vfr.mp4", 300, "-vf", jump, "-fps_mode", "vfr")
    root = tmp_path / "frames"
    extract_batches(video, root, batch_size=100)
    before = deleted(root, "0002")
    done = restore_batch(root, "0002")
    assert contents(root / "0002") == before
    assert done.frames_decoded == (100 if done.seeked else 300)


def test_a_seek_that_lands_elsewhere_is_caught_and_the_batch_decoded_from_the_start(
    tmp_path, monkeypatch
):
    import sam2flow.frames as frames

    root = tmp_path / "frames"
    extract_batches(ffmpeg_video(tmp_path / "v.mp4", 300), root, batch_size=100)
    before = deleted(root, "0001")
    real_open = frames.open_video

    class OffByThree:  # a decoder whose seek lands three frames early
        def __init__(self, video):
            self.cap = real_open(video)

        def set(self, prop, value):
            return self.cap.set(prop, value - 3)

        def __getattr__(self, name):
            return getattr(self.cap, name)

    monkeypatch.setattr(frames, "open_video", OffByThree)
    done = restore_batch(root, "0001")
    assert not done.seeked and done.frames_decoded == 200
    assert contents(root / "0001") == before


def test_a_video_that_changed_since_extraction_is_an_error_not_other_frames(tmp_path):
    root = tmp_path / "frames"
    extract_batches(ffmpeg_video(tmp_path / "v.mp4", 300), root, batch_size=100)
    manifest = json.loads((root / "frames.json").read_text())
    manifest["digests"]["0001"][0] = "0" * 24  # as if frame 100 now decoded differently
    (root / "frames.json").write_text(json.dumps(manifest))
    shutil.rmtree(root / "0001")
    with pytest.raises(UserError, match="frames 100-199 decode differently") as info:
        restore_batch(root, "0001")
    listed_in_troubleshooting(str(info.value))
    assert not (root / "0001").exists()


def test_the_previous_batch_last_frame_comes_back_alone_for_a_chained_batch(tmp_path):
    root = tmp_path / "frames"
    extract_batches(ffmpeg_video(tmp_path / "v.mp4", 300), root, batch_size=100)
    before = deleted(root, "0001")[frame_file(199)]
    path = restore_frame(root, 199)
    assert path == root / CARRY_DIR / frame_file(199) and path.read_bytes() == before
    assert not (root / "0001").exists()  # no partial batch folder
    assert restore_frame(root, 250) == root / "0002" / frame_file(250)  # there: as it is


def test_a_folder_that_is_there_is_left_as_it_is(tmp_path):
    root = tmp_path / "frames"
    extract_batches(ffmpeg_video(tmp_path / "v.mp4", 100), root, batch_size=50)
    (root / "0001" / frame_file(60)).unlink()  # damaged by hand: segment names it
    assert restore_batch(root, "0001") is None
    assert not (root / "0001" / frame_file(60)).exists()


def test_a_later_run_writes_the_manifest_without_decoding(tmp_path):
    video = ffmpeg_video(tmp_path / "v.mp4", 100)
    listing = tmp_path / "listing.json"
    first = reuse_or_extract(video, tmp_path / "a", 50, 95, listing=listing)
    again = reuse_or_extract(video, tmp_path / "b", 50, 95, listing=listing)
    assert again == first and sorted(p.name for p in (tmp_path / "b").iterdir()) == ["frames.json"]
    restore_batch(tmp_path / "b", "0001")
    assert contents(tmp_path / "b" / "0001") == contents(tmp_path / "a" / "0001")
    other = reuse_or_extract(video, tmp_path / "c", 50, 80, listing=listing)  # new quality
    assert other.quality == 80 and (tmp_path / "c" / "0001").is_dir()
