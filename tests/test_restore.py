"""A batch whose frames a finished run deleted is decoded again by seeking to it: only its
frames, the same JPEG bytes as the first extraction, and a seek that lands elsewhere is
caught by the frame digests and replaced by decoding from the start."""

from __future__ import annotations

import json
import logging
import os
import shutil

import pytest

from sam2flow.errors import UserError
from sam2flow.extract import extract_batches, reuse_or_extract
from sam2flow.frame_folders import CARRY_DIR, frame_file, lasting_batches
from sam2flow.restore import Restored, restore_batch, restore_frame

from conftest import ffmpeg_video, listed_in_troubleshooting, shared_file

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def contents(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def deleted(root, batch) -> dict[str, bytes]:
    """Delete a batch folder (as temp() does), returning what it held."""
    before = contents(root / batch)
    shutil.rmtree(root / batch)
    return before


def extracted(tmp_path, frames: int = 300) -> tuple:
    """A synthetic video extracted in batches of 100: its frames folder and its manifest."""
    root = tmp_path / "frames"
    extract_batches(ffmpeg_video(tmp_path / "v.mp4", frames), root, batch_size=100)
    return root, json.loads((root / "frames.json").read_text())


def seeks_land_early(monkeypatch) -> None:
    """Every seek of the frame decoder lands three frames before the one asked for."""
    import sam2flow.restore as restore

    real_open = restore.open_video

    class OffByThree:
        def __init__(self, video):
            self.cap = real_open(video)

        def set(self, prop, value):
            return self.cap.set(prop, value - 3)

        def __getattr__(self, name):
            return getattr(self.cap, name)

    monkeypatch.setattr(restore, "open_video", OffByThree)


def changed_error(video, first: int, last: int) -> str:
    return (
        f"frames {first}-{last} decode differently than when they were extracted: {video}: "
        "the video changed: extract it again (delete the video's results folder)"
    )


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
    tmp_path, monkeypatch, caplog
):
    root, manifest = extracted(tmp_path)
    before = deleted(root, "0001")
    seeks_land_early(monkeypatch)
    caplog.set_level(logging.INFO, logger="sam2flow.restore")
    caplog.clear()  # the extraction's own line, where an earlier test left INFO on
    assert restore_batch(root, "0001") == Restored(frames_decoded=200, seeked=False)
    assert contents(root / "0001") == before
    assert caplog.messages == [
        f"{manifest['video']}: a seek to frame 100 was not frame-exact; decoding from 0",
        "batch 0001: frames 100-199 decoded again (200 frames decoded, from the video's start)",
    ]


def test_what_a_killed_restore_left_is_cleared_by_the_next(tmp_path):
    root, _ = extracted(tmp_path)
    before = deleted(root, "0001")
    (root / ".0001.tmp").mkdir()  # a restore of this batch was killed half-way
    (root / ".0001.tmp" / "0000999.jpg").write_bytes(b"half")
    assert restore_batch(root, "0001").seeked
    assert contents(root / "0001") == before and not (root / ".0001.tmp").exists()


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


def test_a_batch_listed_past_the_videos_end_is_an_error_naming_the_video(tmp_path):
    root, manifest = extracted(tmp_path)
    manifest["batches"]["0002"] = [200, 309]  # the video now ends at 299
    (root / "frames.json").write_text(json.dumps(manifest))
    shutil.rmtree(root / "0002")
    with pytest.raises(UserError) as info:
        restore_batch(root, "0002")
    assert str(info.value) == changed_error(manifest["video"], 200, 309)


def test_a_batch_whose_last_frame_decodes_differently_is_an_error(tmp_path):
    root, manifest = extracted(tmp_path)
    manifest["digests"]["0001"][1] = "0" * 24  # as if frame 199 now decoded differently
    (root / "frames.json").write_text(json.dumps(manifest))
    shutil.rmtree(root / "0001")
    with pytest.raises(UserError) as info:
        restore_batch(root, "0001")
    assert str(info.value) == changed_error(manifest["video"], 100, 199)


def test_any_frame_of_a_deleted_batch_comes_back_and_the_log_says_how(tmp_path, caplog):
    """A batch's first and last frames have digests, so a seek reaches them; a frame
    between them is decoded from the video's start."""
    root, _ = extracted(tmp_path)
    before = deleted(root, "0001")
    caplog.set_level(logging.INFO, logger="sam2flow.restore")
    for frame, how in [
        (100, "1 frames decoded, after a seek"),
        (199, "1 frames decoded, after a seek"),
        (150, "151 frames decoded, from the video's start"),
    ]:
        path = restore_frame(root, frame)
        assert path == root / CARRY_DIR / frame_file(frame)
        assert path.read_bytes() == before[frame_file(frame)]
        assert f"frame {frame} decoded again ({how})" in caplog.messages


def test_a_frame_whose_seek_lands_elsewhere_is_decoded_from_the_start(tmp_path, monkeypatch):
    root, _ = extracted(tmp_path)
    before = deleted(root, "0001")[frame_file(199)]
    seeks_land_early(monkeypatch)
    assert restore_frame(root, 199).read_bytes() == before


def test_a_later_run_reuses_the_listing_in_any_folder_and_says_so(tmp_path, caplog):
    video = ffmpeg_video(tmp_path / "v.mp4", 100)
    listing = tmp_path / "listing.json"
    first = reuse_or_extract(video, tmp_path / "a", 50, 95, listing=listing)
    caplog.set_level(logging.INFO, logger="sam2flow.extract")
    for out in (tmp_path / "a", tmp_path / "new" / "nested"):  # its own again, or a new one
        assert reuse_or_extract(video, out, 50, 95, listing=listing) == first
        assert (out / "frames.json").read_text() == listing.read_text()
    said = (
        f"{video}: 100 frames in 2 batches, as extracted before ({listing}); "
        "each batch job that runs decodes its own frames"
    )
    assert caplog.messages.count(said) == 2


def test_without_a_listing_the_video_is_extracted_by_the_workers_asked_for(tmp_path, caplog):
    video = ffmpeg_video(tmp_path / "v.mp4", 400)  # keyframes at 0 and 250
    caplog.set_level(logging.INFO, logger="sam2flow")
    alone = reuse_or_extract(video, tmp_path / "one", 100, 95)
    assert not any("in parallel" in m for m in caplog.messages)
    assert reuse_or_extract(video, tmp_path / "two", 100, 95, workers=2) == alone
    assert f"{video}: 400 frames decoded in 2 ranges in parallel" in caplog.messages
    assert contents(tmp_path / "two" / "0003") == contents(tmp_path / "one" / "0003")


def test_the_lasting_listing_holds_until_the_video_is_replaced_or_gone(tmp_path):
    video = tmp_path / "v.mp4"
    ffmpeg_video(video, 100)
    listing = tmp_path / "listing.json"
    first = reuse_or_extract(video, tmp_path / "a", 50, 95, listing=listing)
    when = listing.stat().st_mtime
    os.utime(video, (when + 1, when + 1))  # touched: still the same video
    assert lasting_batches(listing, video, 50) == first.batches
    ffmpeg_video(video, 101)  # replaced in place by one frame more
    assert lasting_batches(listing, video, 50) is None
    video.unlink()
    assert lasting_batches(listing, video, 50) is None
