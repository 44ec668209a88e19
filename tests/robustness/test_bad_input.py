"""Bad input on the command line: one line naming the input and the fix, exit 2 (3 for host
memory), no traceback, and nothing the user already had is touched.

Each case builds its inputs in a scratch folder beside a user's folder of notes and a
finished extraction; after the command, both are byte for byte as before.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sam2flow.extract import extract_batches
from sam2flow.frame_folders import frame_file

from conftest import listed_in_troubleshooting, sam2flow, write_video

FAST = ["--weights", "random", "--image-size", "256", "--device", "cpu"]
FAST += ["--disable-adaptive-batch-size", "--disable-memory-monitoring"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model):
    """A video extracted into two batches (0-11, 12-23), one segmented, and user files."""
    root = tmp_path_factory.mktemp("world")
    video = write_video(root / "v.mp4", frames=24)
    extract_batches(video, root / "frames", batch_size=12)
    sam2flow(
        "segment",
        "--frames",
        root / "frames" / "0000",
        "--out",
        root / "out" / "0000",
        "--point",
        "40,60",
        *FAST,
    )
    sam2flow(*seg_args(root / "frames" / "0001", root / "out" / "0001", "--point", "40,60"))
    other = write_video(root / "w.mp4", frames=24, seed=7)  # same size, other content
    extract_batches(other, root / "w_frames", batch_size=12)
    sam2flow(*seg_args(root / "w_frames" / "0001", root / "w_out" / "0001", "--point", "40,60"))
    extract_batches(write_video(root / "wide.mp4", frames=24, width=200), root / "wide_frames", 12)
    cv2.imwrite(str(root / "zero_mask.png"), np.zeros((120, 160), np.uint8))
    shutil.copytree(root / "frames" / "0000", root / "mixed")
    cv2.imwrite(str(root / "mixed" / frame_file(5)), np.full((120, 200, 3), 90, np.uint8))
    shutil.copytree(root / "frames" / "0000", root / "halfcut")
    jpeg = root / "halfcut" / frame_file(6)
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    cv2.imwrite(str(root / "still.png"), np.full((120, 160, 3), 90, np.uint8))
    (root / "still.png").rename(root / "still.mp4")
    damage_batch(root / "out" / "0000", root)
    (root / "notes").mkdir()
    (root / "notes" / "2024").mkdir()
    (root / "notes" / "2024" / "notes.txt").write_text("a user's notes")
    (root / "empty").mkdir()
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("not a video")
    cv2.imwrite(str(root / "small_mask.png"), np.eye(10, dtype=np.uint8) * 255)
    (root / "truncated.npz").write_bytes((root / "out" / "0000" / "masks.npz").read_bytes()[:500])
    dlc = root / "dlc.csv"
    rows = ["scorer,s,s,s", "bodyparts,snout,snout,snout", "coords,x,y,likelihood"]
    rows += [f"{f},{5000 + f},{60},0.9" for f in range(24)]  # x far outside the 160 px frame
    dlc.write_text("\n".join(rows) + "\n")
    for name in ("gap", "extra", "corrupt"):  # copies of the extraction, each damaged
        shutil.copytree(root / "frames", root / name)
    (root / "gap" / "0000" / frame_file(5)).unlink()
    shutil.copy(root / "frames" / "0001" / frame_file(12), root / "extra" / "0000" / frame_file(30))
    jpeg = root / "corrupt" / "0000" / frame_file(6)
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    (root / "record.json").write_text("{}")
    for name in ("va", "vb"):  # one batch's outputs, as if from two videos
        shutil.copytree(root / "out" / "0000", root / name)
        record = json.loads((root / name / "memory.json").read_text())
        (root / name / "memory.json").write_text(json.dumps(dict(record, video=name)))
    nodlc = root / "no_y.csv"
    nodlc.write_text("scorer,s,s\nbodyparts,snout,snout\ncoords,x,likelihood\n0,1,0.9\n")
    good = rows[:3] + [f"{f},40,60,0.9" for f in range(24)]  # in the frame, 24 rows
    (root / "dlc_ok.csv").write_text("\n".join(good) + "\n")
    for name, lines in {
        "dlc_twice": [f"{f % 12},40,60,0.9" for f in range(24)],
        "dlc_text": [f"{f},{'4O' if f == 3 else 40},60,0.9" for f in range(24)],
        "dlc_beyond": [f"{f + 100},40,60,0.9" for f in range(24)],
    }.items():
        (root / f"{name}.csv").write_text("\n".join(rows[:3] + lines) + "\n")
    (root / "table.csv").write_text("frame,x,y\n0,40,60\n")
    torch.save({"weights": {}}, root / "other.pt")  # a PyTorch file, not SAM 2's layout
    torch.save({"model": {"w": torch.zeros(1)}}, root / "wrong.pt")  # no registry model's
    torch.save({"model": tiny_model.predictor.state_dict()}, root / "tiny.pt")
    (root / "a_file").write_text("a user's file where a folder is asked for")
    for name in ("twice", "named", "lone", "late", "gap5", "huge"):
        (root / name).mkdir()
    for f in (0, 1, 2, 4, 5):  # SAM 2's own naming, frame 3 missing, no frames.json
        shutil.copy(root / "frames" / "0000" / frame_file(f), root / "gap5" / f"{f:05d}.jpg")
    shutil.copy(root / "frames" / "0000" / frame_file(0), root / "huge" / ("9" * 25 + ".jpg"))
    first = root / "frames" / "0000" / frame_file(0)
    shutil.copy(first, root / "twice" / frame_file(0))
    shutil.copy(first, root / "twice" / "00000.jpg")  # SAM 2's naming: the same index
    shutil.copy(first, root / "named" / "first.jpg")
    for f in range(12, 24):  # batch 0001 alone, without the frames.json beside it
        shutil.copy(root / "frames" / "0001" / frame_file(f), root / "lone" / frame_file(f))
        if f > 12:  # ... and starting one frame late
            shutil.copy(root / "frames" / "0001" / frame_file(f), root / "late" / frame_file(f))
    return root


def seg_args(frames: Path, out: Path, *args) -> list:
    return ["segment", "--frames", frames, "--out", out, *args, *FAST]


def damage_batch(batch: Path, root: Path) -> None:
    """Copies of a segmented batch, each damaged in one way a disk or a hand can."""
    with np.load(batch / "masks.npz") as data:
        fields = {k: data[k] for k in data.files}
    for name, change in {
        "no_status": lambda f: {k: v for k, v in f.items() if k != "status"},
        "reversed": lambda f: {**f, "frames": f["frames"][::-1]},
    }.items():
        shutil.copytree(batch, root / name)
        np.savez(root / name / "masks.npz", **change(fields))
    shutil.copytree(batch, root / "table_cut")
    table = (batch / "frames.csv").read_text().splitlines()
    (root / "table_cut" / "frames.csv").write_text("\n".join(table[:4]) + "\n")
    shutil.copytree(batch, root / "table_columns")
    header, *rows = table
    (root / "table_columns" / "frames.csv").write_text(
        "\n".join([header.replace("status", "state"), *rows]) + "\n"
    )


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "scratch" not in p.parts
    }


def seg(*args):
    return ["segment", "--frames", "{frames}/0000", "--out", "{scratch}/o", *args, *FAST]


def seg_in(folder: str, *args):
    """Segment another folder than the first batch."""
    return ["segment", "--frames", folder, "--out", "{scratch}/o", *args, *FAST]


def seg_checkpoint(path: str):
    """Segment with a checkpoint file (FAST would choose random weights)."""
    return ["segment", "--frames", "{frames}/0000", "--out", "{scratch}/o", "--point", "40,60"] + [
        "--checkpoint",
        path,
        "--image-size",
        "256",
        "--device",
        "cpu",
    ]


CARRY = ["--point", "40,60", "--prompt-frame", "0", "--carry-from", "{out}/0000/masks.npz"]


# (id, arguments, exit status, words the one line must hold). {root}, {frames}, {out},
# {scratch} are filled in; each case names the input at fault.
CASES = [
    (
        "dlc-rows",
        seg("--prompts", "{root}/dlc_ok.csv", "--video-frames", "30"),
        2,
        ["has 24 frame rows but the video has 30 frames", "dlc_ok.csv"],
    ),
    (
        "dlc-bodypart",
        seg("--prompts", "{root}/dlc_ok.csv", "--bodyparts", "tail"),
        2,
        ["unknown bodypart(s) tail", "dlc_ok.csv"],
    ),
    ("dlc-not-scorer", seg("--prompts", "{root}/table.csv"), 2, ["not 'scorer'", "table.csv"]),
    ("checkpoint-not-sam2", seg_checkpoint("{root}/other.pt"), 2, ["not a SAM 2", "other.pt"]),
    ("checkpoint-other-model", seg_checkpoint("{root}/wrong.pt"), 2, ["does not fit", "wrong.pt"]),
    (
        "checkpoint-another-size",
        seg_checkpoint("{root}/tiny.pt") + ["--model", "sam2.1_hiera_large"],
        2,
        ["not fit model sam2.1_hiera_large", "it is sam2.1_hiera_tiny's", "tiny.pt"],
    ),
    ("frames-one-index-twice", seg_in("{root}/twice", "--point", "40,60"), 2, ["two files"]),
    ("frames-not-numbered", seg_in("{root}/named", "--point", "40,60"), 2, ["first.jpg"]),
    ("carry-without-its-jpeg", seg_in("{root}/lone", *CARRY), 2, ["JPEG of frame 11"]),
    ("carry-not-the-previous", seg_in("{root}/late", *CARRY), 2, ["ends on frame 11, not 12"]),
    (
        "prompt-frame-beyond",
        seg("--point", "40,60", "--prompt-frame", "500"),
        2,
        ["prompt frame 500", "outside the video"],
    ),
    (
        "prompt-frame-negative",
        seg("--point", "40,60", "--prompt-frame", "-1"),
        2,
        ["prompt frame -1"],
    ),
    ("point-nan", seg("--point", "nan,60"), 2, ["nan,60", "finite"]),
    ("point-inf", seg("--point", "inf,60"), 2, ["inf,60", "finite"]),
    ("point-outside", seg("--point", "5000,60"), 2, ["(5000, 60)", "outside the 160x120 frame"]),
    ("point-negative", seg("--point=-3,60"), 2, ["(-3, 60)", "outside"]),
    ("point-bad-label", seg("--point", "40,60,2"), 2, ["40,60,2", "label"]),
    ("point-not-numbers", seg("--point", "a,b"), 2, ["point 'a,b' must be X,Y", "numbers"]),
    ("box-reversed", seg("--box", "30,10,20,40"), 2, ["30,10,20,40", "X1 > X0"]),
    ("box-nan", seg("--box", "nan,1,2,3"), 2, ["nan,1,2,3"]),
    ("box-outside", seg("--box", "10,10,900,50"), 2, ["(900, 50)", "outside"]),
    ("mask-missing", seg("--mask", "{root}/none.png"), 2, ["cannot read mask image", "none.png"]),
    ("mask-wrong-size", seg("--mask", "{root}/small_mask.png"), 2, ["mask is 10x10", "160x120"]),
    (
        "frames-missing",
        ["segment", "--frames", "{root}/nowhere", "--out", "{scratch}/o", "--point", "1,1", *FAST],
        2,
        ["frame folder not found", "nowhere"],
    ),
    (
        "frames-empty",
        ["segment", "--frames", "{root}/empty", "--out", "{scratch}/o", "--point", "1,1", *FAST],
        2,
        ["no JPEG frames", "empty"],
    ),
    (
        "carry-missing",
        [
            "segment",
            "--frames",
            "{frames}/0001",
            "--out",
            "{scratch}/o",
            "--point",
            "40,60",
            "--prompt-frame",
            "0",
            "--carry-from",
            "{root}/none.npz",
            *FAST,
        ],
        2,
        ["cannot read the carried masks", "none.npz"],
    ),
    (
        "carry-truncated",
        [
            "segment",
            "--frames",
            "{frames}/0001",
            "--out",
            "{scratch}/o",
            "--point",
            "40,60",
            "--prompt-frame",
            "0",
            "--carry-from",
            "{root}/truncated.npz",
            *FAST,
        ],
        2,
        ["cannot read the carried masks", "truncated.npz"],
    ),
    (
        "carry-wrong-batch",
        [
            "segment",
            "--frames",
            "{frames}/0000",
            "--out",
            "{scratch}/o",
            "--point",
            "40,60",
            "--prompt-frame",
            "100",
            "--carry-from",
            "{out}/0000/masks.npz",
            *FAST,
        ],
        2,
        ["prompt frame 100"],
    ),
    ("dlc-missing", seg("--prompts", "{root}/none.csv"), 2, ["prompt file not found", "none.csv"]),
    (
        "dlc-outside-frame",
        seg("--prompts", "{root}/dlc.csv"),
        2,
        ["outside the 160x120 frame", "dlc.csv", "scale"],
    ),
    (
        "dlc-wrong-type",
        seg("--prompts", "{root}/text.mp4"),
        2,
        ["unknown prompt file type", "text.mp4"],
    ),
    ("model-unknown", [*seg("--point", "40,60"), "--model", "sam3"], 2, ["unknown model 'sam3'"]),
    (
        "image-size-odd",
        [*seg("--point", "40,60"), "--image-size", "250"],
        2,
        ["image size 250", "multiple of 32"],
    ),
    ("device-cuda", [*seg("--point", "40,60"), "--device", "cuda"], 2, ["CUDA is not available"]),
    (
        "device-unknown",
        [*seg("--point", "40,60"), "--device", "gpu0"],
        2,
        ["unknown device 'gpu0'"],
    ),
    (
        "threshold",
        [*seg("--point", "40,60"), "--memory-threshold", "2"],
        2,
        ["memory_threshold", "2"],
    ),
    ("min-chunk-zero", [*seg("--point", "40,60"), "--min-chunk", "0"], 2, ["min_chunk"]),
    (
        "checkpoint-missing",
        [
            "segment",
            "--frames",
            "{frames}/0000",
            "--out",
            "{scratch}/o",
            "--point",
            "40,60",
            "--checkpoint",
            "{root}/none.pt",
            "--image-size",
            "256",
            "--device",
            "cpu",
        ],
        2,
        ["none.pt"],
    ),
    (
        "checkpoint-not-torch",
        [
            "segment",
            "--frames",
            "{frames}/0000",
            "--out",
            "{scratch}/o",
            "--point",
            "40,60",
            "--checkpoint",
            "{root}/text.mp4",
            "--image-size",
            "256",
            "--device",
            "cpu",
        ],
        2,
        ["not a readable PyTorch checkpoint", "text.mp4"],
    ),
    (
        "extract-typo",
        ["extract", "--video", "{root}/TYPO.mp4", "--out", "{frames}"],
        2,
        ["video not found", "TYPO.mp4"],
    ),
    (
        "extract-into-notes",
        ["extract", "--video", "{root}/TYPO.mp4", "--out", "{root}/notes"],
        2,
        ["video not found"],
    ),
    (
        "extract-empty",
        ["extract", "--video", "{root}/empty.mp4", "--out", "{frames}"],
        2,
        ["empty (0 bytes)", "empty.mp4"],
    ),
    (
        "extract-not-video",
        ["extract", "--video", "{root}/text.mp4", "--out", "{frames}"],
        2,
        ["cannot open video", "text.mp4"],
    ),
    (
        "extract-batch-zero",
        ["extract", "--video", "{root}/v.mp4", "--out", "{scratch}/f", "--batch-size", "0"],
        2,
        ["batch_size must be >= 1"],
    ),
    (
        "extract-quality",
        ["extract", "--video", "{root}/v.mp4", "--out", "{scratch}/f", "--quality", "101"],
        2,
        ["quality must be in 1..100"],
    ),
    (
        "merge-repeated",
        ["merge", "--batches", "{out}/0000", "{out}/0000", "--out", "{scratch}/m"],
        2,
        ["overlap", "0000"],
    ),
    (
        "merge-two-videos",
        ["merge", "--batches", "{root}/va", "{root}/vb", "--out", "{scratch}/m"],
        2,
        ["batches of different videos", "va", "vb"],
    ),
    (
        "merge-missing",
        ["merge", "--batches", "{out}/0000", "{root}/nowhere", "--out", "{scratch}/m"],
        2,
        ["cannot read batch masks", "nowhere"],
    ),
    (
        "summary-damaged",
        ["summary", "--records", "{root}/text.mp4", "--out", "{scratch}/s"],
        2,
        ["batch record is damaged", "text.mp4"],
    ),
    (
        "batch-frame-missing",
        [
            "segment",
            "--frames",
            "{root}/gap/0000",
            "--out",
            "{scratch}/o",
            "--point",
            "40,60",
            *FAST,
        ],
        2,
        ["frame 5 is missing", "lists frames 0-11", "gap/0000"],
    ),
    (
        "batch-frame-extra",
        [
            "segment",
            "--frames",
            "{root}/extra/0000",
            "--out",
            "{scratch}/o",
            "--point",
            "40,60",
            *FAST,
        ],
        2,
        ["frame 30 does not belong", "extra/0000"],
    ),
    (
        "batch-frame-corrupt",
        [
            "segment",
            "--frames",
            "{root}/corrupt/0000",
            "--out",
            "{scratch}/o",
            "--point",
            "40,60",
            *FAST,
        ],
        2,
        ["cannot read frame", "corrupt/0000/" + frame_file(6)],
    ),
    ("dlc-no-y", seg("--prompts", "{root}/no_y.csv"), 2, ["no_y.csv", "y"]),
    ("max-gpu-negative", seg("--point", "40,60", "--max-gpu-memory-gb", "-1"), 2, ["-1"]),
    ("decoder-unknown", seg("--point", "40,60", "--frame-decoder", "magic"), 2, ["magic"]),
    ("prompt-frame-text", seg("--point", "40,60", "--prompt-frame", "x"), 2, ["'x'"]),
    (
        "extract-batch-text",
        ["extract", "--video", "{root}/v.mp4", "--out", "{scratch}/f", "--batch-size", "many"],
        2,
        ["'many'"],
    ),
    (
        "summary-not-a-record",
        ["summary", "--records", "{root}/record.json", "--out", "{scratch}/s"],
        2,
        ["batch record is damaged", "record.json", "status"],
    ),
    (
        "summary-same-record-twice",
        ["summary", "--records", "{out}/0000/memory.json", "{out}/0000/memory.json"]
        + ["--out", "{scratch}/s"],
        2,
        ["two records of frames 0-11 of video (unnamed)", "{out}/0000/memory.json"],
    ),
    (
        "cutoff-above-one",
        seg("--prompts", "{root}/dlc_ok.csv", "--likelihood-cutoff", "5"),
        2,
        ["--likelihood-cutoff (config prompts.likelihood_cutoff): 5", "maximum of 1"],
    ),
    (
        "offset-not-two-numbers",
        seg("--prompts", "{root}/dlc_ok.csv", "--offset", "5"),
        2,
        ["argument --offset: '5' must be X,Y: two finite numbers"],
    ),
    (
        "scale-not-a-number",
        seg("--prompts", "{root}/dlc_ok.csv", "--scale", "nan"),
        2,
        ["--scale (config prompts.scale): nan is not a finite number"],
    ),
    (
        "threshold-not-a-number",
        seg("--point", "40,60", "--memory-threshold", "nan"),
        2,
        ["--memory-threshold (config memory.memory_threshold): nan is not a finite number"],
    ),
    (
        "budget-below-zero",
        ["memory", "plan", "--frames", "400", "--height", "120", "--width", "160"]
        + ["--budget-gb=-3"],
        2,
        ["argument --budget-gb: '-3' must be a number above 0"],
    ),
    (
        "budget-infinite",
        ["memory", "plan", "--frames", "400", "--height", "120", "--width", "160"]
        + ["--budget-gb", "inf"],
        2,
        ["argument --budget-gb: 'inf' must be a number above 0"],
    ),
    (
        "threads-zero",
        seg("--point", "40,60", "--threads", "0"),
        2,
        ["argument --threads: '0' must be a whole number of 1 or more"],
    ),
    (
        "video-frames-zero",
        seg("--point", "40,60", "--video-frames", "0"),
        2,
        ["argument --video-frames: '0' must be a whole number of 1 or more"],
    ),
    (
        "extract-workers-negative",
        ["extract", "--video", "{root}/v.mp4", "--out", "{scratch}/f", "--workers=-2"],
        2,
        ["argument --workers: '-2' must be a whole number of 1 or more"],
    ),
    (
        "demo-frames-zero",
        ["demo-data", "--out", "{scratch}/d", "--frames", "0"],
        2,
        ["argument --frames: '0' must be a whole number of 1 or more"],
    ),
    (
        "grow-after-negative",
        seg("--point", "40,60", "--sizing-grow-after", "-3"),
        2,
        ["--sizing-grow-after (config memory.sizing_grow_after): -3", "minimum of 1"],
    ),
    (
        "segment-out-is-a-file",
        ["segment", "--frames", "{frames}/0000", "--out", "{root}/a_file", "--point", "40,60"]
        + FAST,
        2,
        ["a file stands where a folder goes", "a_file"],
    ),
    (
        "extract-out-is-a-file",
        ["extract", "--video", "{root}/v.mp4", "--out", "{root}/a_file"],
        2,
        ["a file stands where a folder goes", "a_file"],
    ),
    (
        "summary-out-is-a-file",
        ["summary", "--records", "{out}/0000/memory.json", "--out", "{root}/a_file"],
        2,
        ["a file stands where a folder goes", "a_file"],
    ),
    (
        "merge-out-is-a-file",
        ["merge", "--batches", "{out}/0000", "--out", "{root}/a_file/merged"],
        2,
        ["a file stands where a folder goes", "a_file"],
    ),
    (
        "frames-gap-without-manifest",
        seg_in("{root}/gap5", "--point", "40,60"),
        2,
        ["frame 3 is missing", "the folder holds frames 0-5", "gap5"],
    ),
    (
        "frames-index-too-large",
        seg_in("{root}/huge", "--point", "40,60"),
        2,
        ["not a frame index (over 2,147,483,647)", "9999999999"],
    ),
    (
        "merge-first-batch-missing",
        ["merge", "--batches", "{out}/0001", "--out", "{scratch}/m"],
        2,
        ["frames 0-11 are in no batch given (the first starts at frame 12)", "out/0001"],
    ),
    (
        "merge-two-unnamed-videos",
        ["merge", "--batches", "{out}/0000", "{root}/w_out/0001", "--out", "{scratch}/m"],
        2,
        ["batches of different videos", "out/0000", "w_out/0001 (other content)"],
    ),
    (
        "merge-npz-without-status",
        ["merge", "--batches", "{root}/no_status", "--out", "{scratch}/m"],
        2,
        ["cannot read batch masks (no status)", "no_status/masks.npz"],
    ),
    (
        "merge-npz-frames-reversed",
        ["merge", "--batches", "{root}/reversed", "--out", "{scratch}/m"],
        2,
        ["batch masks are damaged (frames 11..0 out of order)", "reversed/masks.npz"],
    ),
    (
        "merge-table-cut-short",
        ["merge", "--batches", "{root}/table_cut", "--out", "{scratch}/m"],
        2,
        ["frame table lists other frames than its masks (0-11)", "table_cut/frames.csv"],
    ),
    (
        "merge-table-column-missing",
        ["merge", "--batches", "{root}/table_columns", "--out", "{scratch}/m"],
        2,
        ["cannot read the batch's frame table (no column status)", "table_columns/frames.csv"],
    ),
    (
        "merge-overlay-other-size",
        ["merge", "--batches", "{out}/0000", "{out}/0001", "--out", "{scratch}/m"]
        + ["--video", "{root}/wide.mp4"],
        2,
        ["the video is 200x120 but the masks are 160x120", "wide.mp4"],
    ),
    (
        "merge-overlay-last-batch-missing",
        ["merge", "--batches", "{out}/0000", "--out", "{scratch}/m", "--video", "{root}/v.mp4"],
        2,
        ["the video has 24 frames but the masks cover frames 0-11 (a last batch is missing?)"],
    ),
    ("prompt-mask-empty", seg("--mask", "{root}/zero_mask.png"), 2, ["mask image is empty"]),
    (
        "dlc-frame-twice",
        seg("--prompts", "{root}/dlc_twice.csv"),
        2,
        ["lines 4 and 16 are both frame 0", "dlc_twice.csv"],
    ),
    (
        "dlc-text-in-a-number",
        seg("--prompts", "{root}/dlc_text.csv"),
        2,
        ["line 7: '4O' is not a number (s snout x)", "dlc_text.csv"],
    ),
    (
        "dlc-frames-not-in-the-video",
        seg("--prompts", "{root}/dlc_beyond.csv"),
        2,
        ["rows name frames up to 123 but the video has 24 frames (0-23)", "dlc_beyond.csv"],
    ),
    (
        "carry-other-size",
        seg_in("{root}/wide_frames/0001", *CARRY),
        2,
        ["carried masks are 160x120 but this batch's frames are 200x120", "out/0000/masks.npz"],
    ),
    (
        "carry-other-video",
        seg_in("{root}/w_frames/0001", *CARRY),
        2,
        ["carried masks come from another video", "out/0000/masks.npz"],
    ),
    ("frames-mixed-sizes", seg_in("{root}/mixed", "--point", "40,60"), 2, ["frame 5 is 200x120"]),
    (
        "frames-cut-short-opencv",
        seg_in("{root}/halfcut", "--point", "40,60", "--frame-decoder", "opencv"),
        2,
        ["cannot read frame (JPEG cut short)", "halfcut/" + frame_file(6)],
    ),
    (
        "extract-still-image",
        ["extract", "--video", "{root}/still.mp4", "--out", "{scratch}/f"],
        2,
        ["a still image (png), not a video", "still.mp4"],
    ),
    (
        "summary-missing",
        ["summary", "--records", "{root}/none.json", "--out", "{scratch}/s"],
        2,
        ["batch record is damaged", "none.json"],
    ),
]


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """``sam2flow ARGS`` in this process (the matrix would spend minutes starting Python)."""
    from sam2flow.cli import main

    try:
        status = main(args)
    except SystemExit as stop:  # argparse's own errors
        status = stop.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(case, world, tmp_path, capsys):
    _, args, status, words = case
    names = {
        "root": world,
        "frames": world / "frames",
        "out": world / "out",
        "scratch": tmp_path / "scratch",
    }
    before = snapshot(world)
    code, stderr = run_cli([a.format(**names) for a in args], capsys)
    assert code == status, stderr[-2000:]
    errors = [line for line in stderr.strip().splitlines() if "error:" in line]
    assert len(errors) == 1, stderr[-2000:]
    listed_in_troubleshooting(errors[0])
    for word in words:
        assert word.format(**names) in errors[0], (word, errors[0])
    assert snapshot(world) == before, "a file the user had was changed or removed"
    assert not (tmp_path / "scratch" / "o" / "masks.npz").exists()
    shutil.rmtree(tmp_path / "scratch", ignore_errors=True)


def test_a_bad_input_from_the_installed_command_is_one_line_without_traceback(world, tmp_path):
    args = [a.format(frames=world / "frames", scratch=tmp_path) for a in seg("--point", "nan,60")]
    out = sam2flow(*args, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert [line for line in out.stderr.splitlines() if "error:" in line] == [
        "sam2flow segment: error: points 'nan,60' must be finite numbers"
    ]
    listed_in_troubleshooting(out.stderr)


def test_the_matrix_covers_at_least_45_cases():
    assert len(CASES) >= 45
