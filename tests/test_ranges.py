"""Extraction on several cores gives the frames of one sequential decode: the same frame
indices, the same JPEG bytes and the same manifest, on the shared videos and on videos
with B-frames, a variable frame rate or a frame count the container gets wrong."""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import time

import cv2
import psutil
import pytest

from sam2flow import ranges
from sam2flow.extract import extract_batches
from sam2flow.ranges import SEAM, SEEK_LEAD, mismatch, plan_ranges

from conftest import ffmpeg_video, shared_file

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def jpegs(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


def both_ways(tmp_path, video, caplog, batch_size: int = 100, workers: int = 2) -> bool:
    """Extract ``video`` in one process and with ``workers``; assert they agree. Returns
    whether the parallel extraction ran in ranges (else it fell back to one process)."""
    one = extract_batches(video, tmp_path / "one", batch_size=batch_size)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sam2flow"):
        many = extract_batches(video, tmp_path / "many", batch_size=batch_size, workers=workers)
    assert many.to_json() == one.to_json()  # frame count, batches, digests
    assert jpegs(tmp_path / "many") == jpegs(tmp_path / "one")
    assert not list((tmp_path / "many").glob(".*"))  # no temporary folder left
    return f"in {workers} ranges in parallel" in caplog.text


def test_m3v1_decodes_in_ranges_byte_for_byte(tmp_path, caplog):
    """12 keyframes: ranges start at the two nearest a split in three."""
    assert both_ways(tmp_path, shared_file("m3v1mp4.mp4"), caplog, workers=3), "fell back"


def test_bedroom_has_one_keyframe_so_one_range(tmp_path, caplog):
    """A second range would decode the first again to reach its start."""
    assert not both_ways(tmp_path, shared_file("bedroom.mp4"), caplog)


def test_bedroom_split_between_keyframes_still_decodes_byte_for_byte(tmp_path, caplog, monkeypatch):
    """Forced: the second range starts at frame 100, far from any keyframe."""
    monkeypatch.setattr(ranges, "plan_ranges", lambda *_: [(0, 100), (100, 100)])
    assert both_ways(tmp_path, shared_file("bedroom.mp4"), caplog, batch_size=60)


def test_a_video_with_b_frames_decodes_in_three_ranges_byte_for_byte(tmp_path, caplog):
    video = ffmpeg_video(tmp_path / "b.mp4", 700)  # keyframes at 0, 250 and 500
    assert both_ways(tmp_path, video, caplog, batch_size=160, workers=3), "fell back"


def test_a_variable_frame_rate_video_gives_the_sequential_frames(tmp_path, caplog):
    """Timestamps that jump 40 frames at frame 150, a keyframe every 100: the second range
    starts after the jump. Decoded in ranges only where the seams check out."""
    jump = "setpts='if(lt(N,150),N,N+40)/25/TB'"
    video = ffmpeg_video(tmp_path / "vfr.mp4", 600, "-vf", jump, "-fps_mode", "vfr", "-g", "100")
    both_ways(tmp_path, video, caplog)


def test_a_seek_that_lands_one_frame_off_is_caught_where_the_ranges_meet():
    """The seam check itself (workers run in their own processes): the second range's
    first frames are the first range's extra frames shifted by one."""
    plan = [(0, 300), (300, 300)]
    seam = [(f"d{i}", i * 40.0) for i in range(300, 300 + SEAM)]
    shifted = [(f"d{i}", i * 40.0) for i in range(301, 301 + SEAM)]
    exact = [(300, {}, [], seam), (300, {}, seam, [])]
    assert mismatch(plan, exact) is None
    assert mismatch(plan, [(300, {}, [], seam), (300, {}, shifted, [])]) == 300
    assert mismatch(plan, [(300, {}, [], seam), (299, {}, seam, [])]) == 599  # video short
    assert mismatch(plan, [(300, {}, [], seam), (300, {}, seam, seam[:1])]) == 600  # longer
    same_pixels = [(d, ms + 40.0) for d, ms in seam]  # a still scene: timestamps tell
    assert mismatch(plan, [(300, {}, [], seam), (300, {}, same_pixels, [])]) == 300


def test_a_container_that_declares_too_many_frames_gives_the_decoded_ones(tmp_path, caplog):
    """An AVI cut short: its header still declares every frame it was meant to have."""
    full = ffmpeg_video(tmp_path / "full.mp4", 400)
    avi = tmp_path / "cut.avi"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", full, "-c:v", "mjpeg", "-q:v", "3", str(avi)], check=True
    )
    avi.write_bytes(avi.read_bytes()[: avi.stat().st_size * 2 // 3])
    assert not both_ways(tmp_path, avi, caplog), "a short range must not pass as whole"


def test_ranges_start_just_after_the_keyframes_nearest_an_equal_split():
    keys = list(range(0, 10_000, 300))
    starts = [a for a, _ in plan_ranges(keys, 10_000, 4)]
    assert starts == [0, 2400 + SEEK_LEAD, 5100 + SEEK_LEAD, 7500 + SEEK_LEAD]
    assert plan_ranges([0, 44], 130, 2) == [(0, 130)]  # a range of 60 frames does not pay
    assert plan_ranges([0, 49], 130, 2) == [(0, 65), (65, 65)]
    assert plan_ranges(list(range(0, 1000, 10)), 1000, 1) == [(0, 1000)]


def test_workers_end_when_the_extraction_is_killed(tmp_path):
    """``kill -9`` of the extraction (SLURM's time limit, a user): its workers stop too, so
    none writes into the folder a rerun extracts into."""
    video = ffmpeg_video(tmp_path / "b.mp4", 2400, "-preset", "ultrafast", size="640x480")
    out = tmp_path / "frames"
    code = "import sys; from sam2flow.extract import extract_batches as e; "
    code += "e(*sys.argv[1:3], 100, workers=2)"
    parent = subprocess.Popen([sys.executable, "-c", code, video, str(out)])
    try:
        deadline = time.monotonic() + 60
        while not workers_of(out):  # synchronised on the workers existing, not on a sleep
            assert time.monotonic() < deadline and parent.poll() is None, "no worker started"
            time.sleep(0.05)
        while len(list(out.glob(".*.tmp/*.jpg"))) < 10:  # and on them writing
            assert time.monotonic() < deadline, "workers wrote nothing"
            time.sleep(0.05)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 1.5  # decoding the rest of a range takes seconds more
    while workers_of(out) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not workers_of(out), "a worker outlived the killed extraction"


def workers_of(out) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "sam2flow.ranges" in cmd and str(out) in cmd and p.status() != psutil.STATUS_ZOMBIE:
            found.append(p)
    return found


def test_one_worker_writes_exactly_its_range_and_reads_the_seam_after_it(tmp_path):
    """A worker's own range, run here rather than in its process: frames 130-179 (from
    inside batch 0001) into that batch's temporary folder, the digest of its last frame,
    and (digest, timestamp) of ``SEAM`` frames either side of where it meets the next
    range, which writes into the same batch's folder."""
    from sam2flow.decoding import frame_digest
    from sam2flow.frame_folders import frame_file

    video = ffmpeg_video(tmp_path / "v.mp4", 300)
    whole = tmp_path / "whole"
    extract_batches(video, whole, batch_size=100)
    cap = cv2.VideoCapture(video)
    decoded = [(cap.read()[1], cap.get(cv2.CAP_PROP_POS_MSEC)) for _ in range(240)]
    cap.release()
    marks = [(frame_digest(img), ms) for img, ms in decoded]
    n, digests, head, tail = ranges.decode_range(video, str(tmp_path), 130, 50, 100, 95)
    written = sorted(p.name for p in (tmp_path / ".0001.tmp").iterdir())
    assert n == 50 and written == [frame_file(f) for f in range(130, 180)]
    for name in written:
        assert (tmp_path / ".0001.tmp" / name).read_bytes() == (whole / "0001" / name).read_bytes()
    assert digests == {179: marks[179][0]}
    assert head == marks[130 : 130 + SEAM] and tail == marks[180 : 180 + SEAM]
    n, digests, head, _ = ranges.decode_range(video, str(tmp_path), 180, 40, 100, 95)
    assert n == 40 and digests == {199: marks[199][0], 200: marks[200][0], 219: marks[219][0]}
    assert len(list((tmp_path / ".0001.tmp").iterdir())) == 70
