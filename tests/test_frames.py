"""Frame extraction into JPEG batches, and the lazy frame source."""

import errno
import json
import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sam2flow.errors import UserError
from sam2flow.extract import extract_batches
from sam2flow.frame_folders import lasting_batches, list_frames
from sam2flow.frame_source import FrameSource

from conftest import ffmpeg_video, write_video

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def test_batches_hold_global_frame_indices(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=25)
    result = extract_batches(video, tmp_path / "out", batch_size=10)
    assert result.frames == 25
    assert result.batches == {"0000": [0, 9], "0001": [10, 19], "0002": [20, 24]}
    assert list_frames(tmp_path / "out" / "0001") == list(range(10, 20))
    assert (tmp_path / "out" / "0002" / "0000024.jpg").is_file()
    manifest = json.loads((tmp_path / "out" / "frames.json").read_text())
    assert manifest["frames"] == 25 and manifest["width"] == 160


def test_no_temporary_folders_remain(tmp_path):
    extract_batches(write_video(tmp_path / "v.mp4", frames=12), tmp_path / "out", batch_size=5)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "0000",
        "0001",
        "0002",
        "frames.json",
    ]


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty"), (b"this is not a video\n" * 10, "cannot open video|no decodable frames")],
)
def test_unreadable_videos_are_user_errors_naming_the_file(tmp_path, content, message):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(UserError, match=message) as info:
        extract_batches(bad, tmp_path / "out")
    assert "bad.mp4" in str(info.value)
    assert not (tmp_path / "out" / "frames.json").exists()


def test_frame_source_gives_normalised_tensors_in_any_order(tmp_path):
    extract_batches(write_video(tmp_path / "v.mp4", frames=12), tmp_path / "out", batch_size=12)
    paths = sorted((tmp_path / "out" / "0000").glob("*.jpg"))
    source = FrameSource(paths, image_size=64, read_ahead=3)
    try:
        assert len(source) == 12
        assert (source.video_height, source.video_width) == (120, 160)
        forward = source[5]
        assert forward.shape == (3, 64, 64) and forward.dtype.is_floating_point
        backward = [source[i] for i in (4, 3, 2)]
        assert all(t.shape == (3, 64, 64) for t in backward)
        np.testing.assert_allclose(source[5].numpy(), forward.numpy())
        assert -3 < float(forward.min()) and float(forward.max()) < 3  # ImageNet-normalised
    finally:
        source.close()


def test_extraction_removes_only_its_own_stale_batches(tmp_path):
    out = tmp_path / "out"
    (out / "0007").mkdir(parents=True)  # no manifest lists it: not sam2flow's
    (out / "2024").mkdir()
    (out / "2024" / "notes.txt").write_text("a user's notes")
    (out / ".0003.tmp").mkdir()  # an interrupted extraction's
    (out / "my notes").mkdir()
    extract_batches(write_video(tmp_path / "v.mp4", frames=5), out, batch_size=5)
    names = ["0000", "0007", "2024", "frames.json", "my notes"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert (out / "2024" / "notes.txt").read_text() == "a user's notes"


def test_a_new_extraction_replaces_the_batches_its_manifest_lists(tmp_path):
    out = tmp_path / "out"
    extract_batches(write_video(tmp_path / "v.mp4", frames=10), out, batch_size=3)
    assert sorted(p.name for p in out.iterdir())[:4] == ["0000", "0001", "0002", "0003"]
    extract_batches(write_video(tmp_path / "w.mp4", frames=6), out, batch_size=6)
    assert sorted(p.name for p in out.iterdir()) == ["0000", "frames.json"]


def test_extracting_again_keeps_the_users_files_inside_batch_folders(tmp_path):
    """Only the JPEGs the manifest lists go: a mask image, notes and ``segment --out``
    results a user put in batch folders stay byte for byte, beside the new frames."""
    out = tmp_path / "out"
    extract_batches(write_video(tmp_path / "v.mp4", frames=10), out, batch_size=5)
    mine = {
        out / "0000" / "mask.png": b"a user's mask",
        out / "0000" / "notes.txt": b"a user's notes",
        out / "0001" / "masks.npz": b"segment --out results",
        out / "0001" / "frames.csv": b"frame,status",
    }
    for path, data in mine.items():
        path.write_bytes(data)
    extract_batches(write_video(tmp_path / "w.mp4", frames=12), out, batch_size=4)
    assert {path: path.read_bytes() for path in mine} == mine
    assert list_frames(out / "0000") == [0, 1, 2, 3]
    assert list_frames(out / "0001") == [4, 5, 6, 7]
    assert list_frames(out / "0002") == [8, 9, 10, 11]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def disk_full_at_second_batch(monkeypatch) -> None:
    """The disk fills just as an extraction makes the second batch's folder (injected
    ENOSPC at mkdir: a real small disk fills at a JPEG first)."""
    make_dir = Path.mkdir

    def full_at_batch_1(self, *args, **kwargs):
        if self.name == ".0001.tmp":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return make_dir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", full_at_batch_1)


def test_a_failed_extraction_leaves_no_temporary_frames(tmp_path, monkeypatch):
    """The disk fills as the second batch's folder is made: the first batch's JPEGs, in
    its temporary folder, are removed with it (injected ENOSPC at mkdir)."""
    video = write_video(tmp_path / "v.mp4", frames=30)
    disk_full_at_second_batch(monkeypatch)
    with pytest.raises(UserError, match="No space left"):
        extract_batches(video, tmp_path / "frames", batch_size=10)
    assert list((tmp_path / "frames").iterdir()) == []


def test_frames_a_folder_of_ours_kept_for_a_users_file_does_not_take(tmp_path):
    """A batch folder kept for the user's files in it that has gained JPEGs of someone
    else's is in the way, not mixed with the new frames."""
    out = tmp_path / "out"
    video = write_video(tmp_path / "v.mp4", frames=5)
    extract_batches(video, out, batch_size=5)
    (out / "0000" / "0000099.jpg").write_bytes(b"someone else's frame")
    with pytest.raises(UserError, match="folder 0000 is in the way"):
        extract_batches(video, out, batch_size=5)
    assert (out / "0000" / "0000099.jpg").read_bytes() == b"someone else's frame"


def test_a_missing_video_touches_nothing_already_extracted(tmp_path):
    out = tmp_path / "out"
    extract_batches(write_video(tmp_path / "v.mp4", frames=10), out, batch_size=5)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    with pytest.raises(UserError, match="video not found"):
        extract_batches(tmp_path / "TYPO.mp4", out, batch_size=5)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def test_a_folder_in_the_way_is_named_not_deleted(tmp_path):
    out = tmp_path / "out"
    (out / "0000").mkdir(parents=True)
    (out / "0000" / "mine.txt").write_text("keep")
    with pytest.raises(UserError) as err:
        extract_batches(write_video(tmp_path / "v.mp4", frames=5), out, batch_size=5)
    assert str(err.value) == (
        f"folder 0000 is in the way and was not written by sam2flow: {out / '0000'}: "
        "move it, or extract into another --out folder"
    )
    assert (out / "0000" / "mine.txt").read_text() == "keep"


@needs_ffmpeg
def test_an_extraction_says_what_it_wrote_and_decodes_in_one_process_by_default(tmp_path, caplog):
    video = ffmpeg_video(tmp_path / "v.mp4", 400)  # keyframes at 0 and 250: two ranges
    caplog.set_level(logging.INFO, logger="sam2flow")
    extract_batches(video, tmp_path / "out", batch_size=150)
    assert caplog.messages == [f"{video}: 400 frames in 3 batches of 150"]


def test_the_lasting_manifest_plans_batches_until_the_video_or_batch_size_changes(tmp_path):
    """frames.lasting_batches: the workflow plans a finished video's batches from it (no
    decoding) while it still describes that file at that batch size."""
    video = write_video(tmp_path / "v.mp4", frames=12)
    listing = tmp_path / "frames.json"
    assert lasting_batches(listing, video, 5) is None  # not extracted yet
    extract_batches(video, tmp_path / "out", batch_size=5, listing=listing)
    assert lasting_batches(listing, video, 5) == {"0000": [0, 4], "0001": [5, 9], "0002": [10, 11]}
    assert lasting_batches(listing, video, 4) is None  # another batch size
    assert lasting_batches(listing, tmp_path / "w.mp4", 5) is None  # another (missing) file
    listing.write_text("{not json")
    assert lasting_batches(listing, video, 5) is None
    listing.write_text("[1, 2]")
    assert lasting_batches(listing, video, 5) is None


def test_the_lasting_manifest_follows_the_videos_content_not_its_clock(tmp_path):
    """A touched video is the same video; one replaced in place is not, even when the copy
    keeps an older modification time (cp -p), and neither is a truncated copy."""
    video = write_video(tmp_path / "v.mp4", frames=12)
    listing = tmp_path / "frames.json"
    extract_batches(video, tmp_path / "out", batch_size=5, listing=listing)
    os.utime(video, (time.time() + 10, time.time() + 10))
    assert lasting_batches(listing, video, 5) is not None
    old = video.stat().st_mtime - 3600
    write_video(video, frames=12, width=200)  # another video under the same name
    os.utime(video, (old, old))
    assert lasting_batches(listing, video, 5) is None
    extract_batches(video, tmp_path / "out", batch_size=5, listing=listing)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    assert lasting_batches(listing, video, 5) is None
    video.write_bytes(data)  # the full copy again: the frames extracted from it hold
    assert lasting_batches(listing, video, 5) == {"0000": [0, 4], "0001": [5, 9], "0002": [10, 11]}


def test_frames_are_written_at_the_jpeg_quality_asked_for(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=3)
    cap = cv2.VideoCapture(str(video))
    first = cap.read()[1]
    cap.release()
    for quality in (40, 95):
        extract_batches(video, tmp_path / str(quality), batch_size=10, quality=quality)
        written = (tmp_path / str(quality) / "0000" / "0000000.jpg").read_bytes()
        assert (
            written == cv2.imencode(".jpg", first, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        )


def mounted(folder, options: str) -> None:
    """A tmpfs at ``folder`` (root only: else the test is skipped)."""
    folder.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)]).returncode
    ):
        pytest.skip("needs root to mount a small or read-only disk")


def test_a_disk_that_fills_while_extracting_names_the_frame_it_could_not_write(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=40)
    mounted(tmp_path / "small", "size=48k")
    try:
        with pytest.raises(UserError) as err:
            extract_batches(video, tmp_path / "small" / "frames", batch_size=10)
    finally:
        subprocess.run(["umount", str(tmp_path / "small")])
    assert re.fullmatch(
        rf"cannot write \(No space left on device\): {tmp_path}/small/frames/\.\d{{4}}\.tmp/"
        r"\d{7}\.jpg: free disk space \(or point results elsewhere\) and run again",
        str(err.value),
    ), str(err.value)


def test_a_batch_folder_the_disk_has_no_room_for_is_named(tmp_path, monkeypatch):
    """The disk fills just as the second batch's folder is made (injected: a real small
    disk fills at a JPEG first)."""
    video = write_video(tmp_path / "v.mp4", frames=30)
    disk_full_at_second_batch(monkeypatch)
    with pytest.raises(UserError) as err:
        extract_batches(video, tmp_path / "frames", batch_size=10)
    assert str(err.value) == (
        f"cannot write (No space left on device): {tmp_path}/frames/.0001.tmp: "
        "free disk space (or point results elsewhere) and run again"
    )


def test_a_read_only_disk_is_named_before_any_frame_is_decoded(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=4)
    mounted(tmp_path / "ro", "ro")
    try:
        with pytest.raises(UserError) as err:
            extract_batches(video, tmp_path / "ro" / "frames")
    finally:
        subprocess.run(["umount", str(tmp_path / "ro")])
    assert str(err.value) == (
        f"cannot write (Read-only file system): {tmp_path / 'ro' / 'frames'}: "
        "the file system is read-only: point results elsewhere"
    )


def test_each_unreadable_video_is_named_with_its_fix_in_full(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_bytes(b"not a video")
    whole = Path(ffmpeg_video(tmp_path / "whole.mp4", 30, "-movflags", "+faststart")).read_bytes()
    # the header (which declares 30 frames) and no frame data: it opens, nothing decodes
    (tmp_path / "cut.mp4").write_bytes(whole[: whole.index(b"mdat") + 100])
    expected = {
        "missing.mp4": "video not found: {}: check the path in the sample sheet",
        "empty.mp4": "video file is empty (0 bytes): {}: copy the video again",
        "text.mp4": "cannot open video (not a video, or a codec OpenCV cannot read): {}: "
        "check the file, or re-encode it: ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4",
        "cut.mp4": "no decodable frames in video: {}: "
        "check the file plays, or re-encode it: ffmpeg -i IN -c:v libx264 OUT.mp4",
    }
    for name, message in expected.items():
        with pytest.raises(UserError) as err:
            extract_batches(tmp_path / name, tmp_path / "out")
        assert str(err.value) == message.format(tmp_path / name)
        assert not (tmp_path / "out").exists()


def test_batch_size_and_quality_bounds(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=2)
    for size, quality in [(0, 95), (1, 0), (1, 101)]:
        with pytest.raises(ValueError) as err:
            extract_batches(video, tmp_path / "out", batch_size=size, quality=quality)
        assert str(err.value) == (
            f"batch_size must be >= 1, got {size}"
            if size < 1
            else f"quality must be in 1..100, got {quality}"
        )
    for quality in (1, 100):  # both ends allowed, one frame per batch too
        done = extract_batches(video, tmp_path / f"q{quality}" / "in" / "new", 1, quality)
        assert done.batches == {"0000": [0, 0], "0001": [1, 1]} and done.quality == quality


@needs_ffmpeg
@pytest.mark.parametrize("frames", [30, 1])
def test_the_manifest_holds_the_videos_frame_rate_and_declared_count(tmp_path, frames):
    video = ffmpeg_video(tmp_path / "v.mp4", frames)
    done = extract_batches(video, tmp_path / "out", batch_size=10)
    assert (done.fps, done.frames, done.declared_frames) == (25.0, frames, frames)


@needs_ffmpeg
def test_a_stream_without_a_frame_count_is_extracted_whole_its_count_unknown(tmp_path):
    """Matroska written through a pipe, as a recording cut off before its end: it declares
    no frame count (OpenCV reports a large negative number)."""
    args = ["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-frames:v", "12"]
    with open(tmp_path / "v.mkv", "wb") as stream:
        subprocess.run(
            ["ffmpeg", *args, "-c:v", "libx264", "-f", "matroska", "-"], stdout=stream, check=True
        )
    done = extract_batches(tmp_path / "v.mkv", tmp_path / "out", batch_size=5, workers=2)
    assert (done.frames, done.declared_frames) == (12, None)
    manifest = json.loads((tmp_path / "out" / "frames.json").read_text())
    assert (manifest["frames"], manifest["declared_frames"]) == (12, None)


def test_a_range_of_one_frame_inside_a_batch_is_written_into_that_batchs_folder(tmp_path):
    """A worker's range may start inside a batch and end one frame later: the batch's
    temporary folder is made for that first frame, not for the next one."""
    from sam2flow.decoding import open_video, write_range
    from sam2flow.frame_folders import frame_file, tmp_name

    cap = open_video(write_video(tmp_path / "v.mp4", frames=3))
    (tmp_path / "out").mkdir()
    try:
        n, _, after = write_range(cap, cap.read()[1], tmp_path / "out", 5, 1, 4, 95)
    finally:
        cap.release()
    assert n == 1 and after is not None  # the frame after the range, decoded for the next
    written = [p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.jpg")]
    assert written == [Path(tmp_name("0001"), frame_file(5))]


def test_an_unreadable_earlier_manifest_is_replaced(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=4)
    for damaged in ("not json", "[1, 2]", "{}"):
        out = tmp_path / damaged[:3]
        out.mkdir()
        (out / "frames.json").write_text(damaged)
        assert extract_batches(video, out, batch_size=2).frames == 4
        assert json.loads((out / "frames.json").read_text())["frames"] == 4


def test_extracting_again_clears_what_the_last_extraction_left_and_nothing_else(tmp_path):
    """Batches whose folders a finished run deleted, a killed run's temporary folders and
    carried frames go; another tool's files, even named like ours, stay."""
    video = write_video(tmp_path / "v.mp4", frames=6)
    out = tmp_path / "out"
    extract_batches(video, out, batch_size=2)
    shutil.rmtree(out / "0001")  # deleted after a run (temporary frames)
    (out / ".0007.tmp").mkdir()  # a killed extraction's
    (out / ".carry").mkdir()
    (out / ".carry" / "0000005.jpg").write_bytes(b"from before")
    (out / ".notes.tmp").mkdir()  # someone else's
    (out / ".0008.tmp").write_bytes(b"a file, not a batch folder")
    assert extract_batches(video, out, batch_size=3).batches == {"0000": [0, 2], "0001": [3, 5]}
    assert sorted(p.name for p in out.iterdir()) == [
        ".0008.tmp",
        ".notes.tmp",
        "0000",
        "0001",
        "frames.json",
    ]


def test_a_batch_folder_that_lost_a_frame_is_extracted_again(tmp_path):
    """What the README says to do when a batch folder lost a JPEG."""
    video = write_video(tmp_path / "v.mp4", frames=6)
    out = tmp_path / "out"
    extract_batches(video, out, batch_size=3)
    (out / "0001" / "0000004.jpg").unlink()
    assert extract_batches(video, out, batch_size=3).batches == {"0000": [0, 2], "0001": [3, 5]}
    assert list_frames(out / "0001") == [3, 4, 5]


@pytest.mark.parametrize(
    "batches",
    [
        {"mine": [0, 1], "0000": [0, 2]},  # a name that is no batch's, listed first
        {"0001": "3-5", "0000": [0, 2]},  # a span that is no pair of frames
        {"../v.mp4": [0, 1], "0000": [0, 2]},
    ],
)
def test_a_manifest_edited_by_hand_removes_only_the_batches_it_lists_well(tmp_path, batches):
    """A user's folder named in the manifest keeps its files, even ones named like frames;
    a well-listed batch after it is still removed; batch 0001, listed badly or not at all,
    stands in the way (named, not deleted)."""
    video = write_video(tmp_path / "v.mp4", frames=6)
    out = tmp_path / "out"
    extract_batches(video, out, batch_size=3)
    (out / "mine").mkdir()
    (out / "mine" / "0000000.jpg").write_bytes(b"a user's picture")
    manifest = json.loads((out / "frames.json").read_text())
    (out / "frames.json").write_text(json.dumps({**manifest, "batches": batches}))
    with pytest.raises(UserError, match="folder 0001 is in the way"):
        extract_batches(video, out, batch_size=3)
    assert not (out / "0000").exists() and list_frames(out / "0001") == [3, 4, 5]
    assert (out / "mine" / "0000000.jpg").read_bytes() == b"a user's picture"
    assert video.is_file()


def test_a_manifest_whose_batches_are_not_a_mapping_is_ignored(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=4)
    out = tmp_path / "out"
    out.mkdir()
    (out / "frames.json").write_text(json.dumps({"batches": [[0, 1], [2, 3]]}))
    assert extract_batches(video, out, batch_size=2).batches == {"0000": [0, 1], "0001": [2, 3]}


def test_frames_a_user_put_in_a_batch_folder_outside_its_span_are_kept(tmp_path):
    """Only the batch's own frames go; a JPEG named by a frame of the batches before or after
    it is the user's, and it stands in the way of the new frames (named, not deleted)."""
    video = write_video(tmp_path / "v.mp4", frames=9)
    out = tmp_path / "out"
    extract_batches(video, out, batch_size=3)
    for name in ("0000002.jpg", "0000006.jpg"):  # the frames just before and after 3-5
        (out / "0001" / name).write_bytes(b"a user's picture")
    with pytest.raises(UserError, match="0001"):
        extract_batches(video, out, batch_size=3)
    assert sorted(p.name for p in (out / "0001").iterdir()) == ["0000002.jpg", "0000006.jpg"]
