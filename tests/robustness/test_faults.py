"""Faults: killed jobs, full disks, read-only results, real out-of-memory, missing CUDA."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from sam2flow.atomic import write_text
from sam2flow.errors import UserError
from sam2flow.extract import extract_batches
from sam2flow.memory.devices import resolve_device

from conftest import SAM2FLOW, listed_in_troubleshooting, shared_file, write_video


def test_extraction_killed_half_way_leaves_no_complete_looking_batch(tmp_path):
    video = shared_file("m3v1mp4.mp4")
    out = tmp_path / "frames"
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("sam2flow")),
            "extract",
            "--video",
            str(video),
            "--out",
            str(out),
            "--batch-size",
            "2000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not any(out.glob(".0000.tmp/*.jpg")):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(out.glob(".*.tmp")), "killed while writing its first batch"
    assert not (out / "frames.json").exists()
    assert not (out / "0000").exists() and not (out / "0001").exists()
    # The next run starts clean and completes.
    assert extract_batches(video, out, batch_size=2000).frames == 2330
    assert sorted(p.name for p in out.iterdir()) == ["0000", "0001", "frames.json"]


def test_disk_full_while_writing_leaves_no_truncated_file(tmp_path, monkeypatch):
    target = tmp_path / "memory.json"
    real_write = Path.write_bytes

    def full_disk(self, data):
        real_write(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(UserError, match="No space left on device.*free disk space") as info:
        write_text(target, json.dumps({"status": "ok", "pad": "x" * 1000}))
    assert str(target) in str(info.value) and "\n" not in str(info.value)
    listed_in_troubleshooting(str(info.value))
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left either


def test_results_folder_not_writable(tmp_path, synthetic_video):
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() == 0:  # root ignores permissions: a read-only mount stands in
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(out)])
        if mounted.returncode != 0:
            pytest.skip("root ignores permissions and no read-only mount could be made")
    else:
        out.chmod(0o500)
    try:
        with pytest.raises(UserError, match="cannot write") as info:
            extract_batches(synthetic_video, out / "frames")
        assert "ro" in str(info.value) and "\n" not in str(info.value)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(out)])


def test_device_auto_falls_back_to_cpu_with_a_warning(caplog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    assert "running on the CPU" in caplog.text


def test_device_cuda_without_cuda_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="CUDA is not available"):
        resolve_device("cuda")


REAL_OOM = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    import psutil
    import torch
    from sam2flow.memory import GuardConfig, MemoryGuard
    from sam2flow.models import ModelOptions, build_model
    from sam2flow.prompts import manual_prompt
    from sam2flow.segment import BatchJob, segment_batch

    # Without oneDNN, the first allocation that fails is PyTorch's own ("can't allocate
    # memory"): with it, some runs fail first inside oneDNN ("could not create a
    # primitive"), a message that does not say memory and so is not taken for an OOM.
    torch.backends.mkldnn.enabled = False
    model = build_model(ModelOptions(weights="random", image_size=256, device="cpu"))
    guard = MemoryGuard(GuardConfig(adaptive_batch_size=False), model.device)
    # Leave 40 MiB of address space: the model's first forward pass cannot fit.
    limit = psutil.Process().memory_info().vms + 40 * 1024 ** 2
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # One decoding thread: each further thread's stack and malloc arena would take more
    # of the 40 MiB left than the model's first allocation (glibc aborts the process).
    job = BatchJob(
        Path(sys.argv[1]), Path(sys.argv[2]), manual_prompt(0, "40,60"), "v", "0000", threads=1
    )
    record = segment_batch(job, model, guard)
    print(json.dumps({k: record[k] for k in ("status", "frame_status", "skip_reason")}))
    """
)


def test_real_cpu_oom_in_the_segmentation_process(tmp_path, synthetic_frames):
    out = subprocess.run(
        [sys.executable, "-c", REAL_OOM, str(synthetic_frames), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["status"] == "skipped"
    # Most runs skip every frame; where the allocator freed enough after a failure, a
    # smaller chunk may have fitted: its frames are ok, and every slot is accounted for.
    counts = record["frame_status"]
    assert counts["skipped_oom"] >= 1 and set(counts) <= {"ok", "empty", "skipped_oom"}
    assert sum(counts.values()) == 60
    assert "allocate" in record["skip_reason"] or "memory" in record["skip_reason"].lower()
    assert (tmp_path / "out" / "memory.json").is_file() and (
        tmp_path / "out" / "masks.npz"
    ).is_file()


def test_user_error_names_the_file_and_the_fix():
    err = UserError("cannot open video", "a b.mp4", "re-encode it")
    assert str(err) == "cannot open video: a b.mp4: re-encode it"


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    target = tmp_path / "frames.csv"
    write_text(target, "frame\n")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_file_size_limit_is_one_line_naming_the_file_and_the_limit(tmp_path):
    """``ulimit -f`` (a job's or a shell's limit on file size), for real: the first JPEG
    over it fails with EFBIG, named in one line like a full disk."""
    import resource

    video = write_video(tmp_path / "v.mp4", frames=4)
    out = subprocess.run(
        [SAM2FLOW, "extract", "--video", video, "--out", tmp_path / "frames"],
        capture_output=True,
        text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000)),
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("sam2flow extract: error: cannot write (File too large): ")
    assert line.endswith("(ulimit -f): raise it or point results elsewhere")
    listed_in_troubleshooting(line)
    assert not list((tmp_path / "frames").glob(".*.tmp"))
