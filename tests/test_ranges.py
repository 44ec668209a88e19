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

import psutil
import pytest

from sam2flow.frames import extract_batches
from sam2flow.ranges import plan_ranges

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


@pytest.mark.parametrize("name", ["bedroom.mp4", "m3v1mp4.mp4"])
def test_the_shared_videos_decode_in_ranges_byte_for_byte(tmp_path, caplog, name):
    assert both_ways(tmp_path, shared_file(name), caplog, batch_size=90), "fell back"


def test_a_video_with_b_frames_decodes_in_three_ranges_byte_for_byte(tmp_path, caplog):
    """Ranges that start between keyframes (every 250 frames) and inside a batch."""
    video = ffmpeg_video(tmp_path / "b.mp4", 700)
    assert both_ways(tmp_path, video, caplog, batch_size=160, workers=3), "fell back"


def test_a_variable_frame_rate_video_gives_the_sequential_frames(tmp_path, caplog):
    """Timestamps that jump: a seek from the frame rate lands elsewhere, the ranges do not
    meet, and the video is decoded in one process."""
    jump = "setpts='if(lt(N,150),N,N+40)/25/TB'"
    video = ffmpeg_video(tmp_path / "vfr.mp4", 300, "-vf", jump, "-fps_mode", "vfr")
    in_ranges = both_ways(tmp_path, video, caplog)
    assert in_ranges or "did not meet" in caplog.text


def test_a_container_that_declares_too_many_frames_gives_the_decoded_ones(tmp_path, caplog):
    """An AVI cut short: its header still declares every frame it was meant to have."""
    full = ffmpeg_video(tmp_path / "full.mp4", 400)
    avi = tmp_path / "cut.avi"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", full, "-c:v", "mjpeg", "-q:v", "3", str(avi)], check=True
    )
    avi.write_bytes(avi.read_bytes()[: avi.stat().st_size * 2 // 3])
    assert not both_ways(tmp_path, avi, caplog), "a short range must not pass as whole"
    assert "did not meet" in caplog.text


def test_ranges_are_equal_parts_and_never_too_short_to_pay():
    assert plan_ranges(10_000, 4) == [(0, 2500), (2500, 2500), (5000, 2500), (7500, 2500)]
    assert plan_ranges(130, 8) == [(0, 65), (65, 65)]
    assert plan_ranges(63, 2) == [(0, 63)]


def test_workers_end_when_the_extraction_is_killed(tmp_path):
    """``kill -9`` of the extraction (SLURM's time limit, a user): its workers stop too, so
    none writes into the folder a rerun extracts into."""
    video = ffmpeg_video(tmp_path / "b.mp4", 2400, "-preset", "ultrafast", size="640x480")
    out = tmp_path / "frames"
    code = "import sys; from sam2flow.frames import extract_batches as e; "
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
