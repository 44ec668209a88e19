"""sam2flow benchmarks: side by side with what a user would do instead, in one run.

    python bench/run.py --quick     # make bench-quick: CPU rows in under 10 minutes
    python bench/run.py             # make bench: more sizes and runs (and GPU rows on a GPU)
    python bench/run.py --gpu       # GPU rows only: segmentation and guard cost (no ffmpeg,
                                    # no Snakemake needed, for a lent GPU machine)

Writes bench/results/<date>-<device>.json and regenerates the table in BENCHMARKS.md.
Every figure is the median of several runs with min and max; each segmentation run is a
fresh process so that its peak memory is its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from extraction import bench_extraction, stats  # noqa: E402 (bench/ is this script's folder)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
MIB = 1024**2


def machine() -> dict:
    import sam2  # noqa: F401
    import torch

    try:
        import snakemake

        snakemake_version = snakemake.__version__
    except ImportError:  # --gpu runs where only the library is installed
        snakemake_version = None

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sam2": _version("sam2"),
        "snakemake": snakemake_version,
        "gpu": None,
        "gpu_memory_bytes": None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_bytes"] = torch.cuda.get_device_properties(0).total_memory
    return info


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def segment_once(mode: str, frames_dir: Path, image_size: int, device: str, **extra) -> dict:
    cmd = [
        PY,
        str(ROOT / "bench" / "segment_once.py"),
        mode,
        str(frames_dir),
        "--image-size",
        str(image_size),
        "--device",
        device,
        "--point",
        "210,350",
    ]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    env = dict(os.environ, TQDM_DISABLE="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare_frames(video: Path, n: int, work: Path) -> Path:
    """The first ``n`` frames of ``video`` as a JPEG folder (same files for both modes)."""
    from sam2flow.extract import extract_batches

    full = work / "all"
    if not full.exists():
        extract_batches(video, full, batch_size=100_000)
    folder = work / f"first{n}"
    if not folder.exists():
        folder.mkdir()
        src = sorted((full / "0000").glob("*.jpg"))
        if len(src) < n:  # loop the video to reach n frames
            src = (src * (n // len(src) + 1))[:n]
        for i, path in enumerate(src[:n]):
            shutil.copy(path, folder / f"{i:07d}.jpg")
    return folder


def bench_segmentation(sizes, runs, image_size, device, work) -> dict:
    video = DATA / "bedroom.mp4"
    rows = {}
    for n in sizes:
        folder = prepare_frames(video, n, work)
        row = {}
        for mode in ("sam2flow", "stock"):
            results = [segment_once(mode, folder, image_size, device) for _ in range(runs)]
            row[mode] = {
                "fps": stats([r["fps"] for r in results]),
                "peak_rss_bytes": stats([r["peak_rss_bytes"] for r in results]),
                "peak_cuda_allocated_bytes": (
                    stats([r["peak_cuda_allocated_bytes"] for r in results])
                    if results[0]["peak_cuda_allocated_bytes"] is not None
                    else None
                ),
                "status": [r["status"] for r in results],
            }
            peak = row[mode]["peak_cuda_allocated_bytes"] or row[mode]["peak_rss_bytes"]
            print(
                f"  segment {mode:8s} {n:4d} frames: {row[mode]['fps']['median']:.2f} fps, "
                f"peak {peak['median'] / MIB:.0f} MiB",
                flush=True,
            )
        row["ratio_fps"] = row["sam2flow"]["fps"]["median"] / row["stock"]["fps"]["median"]
        rows[str(n)] = row
    return rows


def bench_guard_cost(n, runs, image_size, device, work) -> dict:
    folder = prepare_frames(DATA / "bedroom.mp4", n, work)
    on, off = [], []
    for _ in range(runs):  # interleaved, so drift hits both alike
        on.append(segment_once("sam2flow", folder, image_size, device, monitoring="on")["seconds"])
        off.append(
            segment_once("sam2flow", folder, image_size, device, monitoring="off")["seconds"]
        )
    cost = statistics.median(on) / statistics.median(off) - 1
    print(f"  guard cost: {cost * 100:+.1f}%", flush=True)
    return {"frames": n, "on_seconds": stats(on), "off_seconds": stats(off), "cost": cost}


def bench_workflow_scale(job_counts, runs, work) -> dict:
    """Time of `snakemake -n` with frames already extracted (6 batches per video)."""
    rows = {}
    for jobs in job_counts:
        project = work / f"scale{jobs}"
        shutil.rmtree(project, ignore_errors=True)
        (project / "config").mkdir(parents=True)
        shutil.copy(ROOT / "config" / "config.yaml", project / "config" / "config.yaml")
        videos = jobs // 6
        lines = ["video\tpath\tprompts\tpoints\tbox\tmask\tprompt_frame"]
        batches = {f"{b:04d}": [b * 400, b * 400 + 399] for b in range(6)}
        (project / "videos").mkdir()
        for v in range(videos):
            name = f"v{v:05d}"
            video = project / "videos" / f"{name}.mp4"
            video.write_bytes(b"")
            lines.append(f"{name}\t{video}\t\t10,10\t\t\t0")
            manifest = {
                "video": str(video),
                "frames": 2400,
                "height": 480,
                "width": 640,
                "fps": 30.0,
                "batch_size": 400,
                "quality": 95,
                "batches": batches,
            }
            frames = project / "results" / name / "frames"
            for b in batches:
                (frames / b).mkdir(parents=True)
            (frames / "frames.json").write_text(json.dumps(manifest))
            (project / "results" / name / "frames.json").write_text(json.dumps(manifest))
        (project / "config" / "videos.tsv").write_text("\n".join(lines) + "\n")
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            out = subprocess.run(
                [
                    str(Path(PY).with_name("snakemake")),
                    "-n",
                    "--cores",
                    "2",
                    "-s",
                    str(ROOT / "Snakefile"),
                    "--directory",
                    str(project),
                    "--quiet",
                    "rules",
                ],
                capture_output=True,
                text=True,
            )
            times.append(time.perf_counter() - t)
            if out.returncode != 0:
                raise RuntimeError(out.stderr[-2000:])
        counted = [
            line for line in (out.stdout + out.stderr).splitlines() if "segment_batch" in line
        ]
        rows[str(jobs)] = {"seconds": stats(times), "videos": videos, "job_line": counted[:1]}
        print(
            f"  snakemake -n with {jobs} segment jobs: {statistics.median(times):.1f} s", flush=True
        )
    return rows


def save(result: dict) -> Path:
    """Write what is measured so far (after every section: a run cut short keeps it)."""
    name = result["machine"]["gpu"] or "cpu"
    tag = "".join(c if c.isalnum() else "-" for c in name).strip("-").lower()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{result['date']}-{tag}{'-quick' if result['quick'] else ''}.json"
    path.write_text(json.dumps(result, indent=1))
    return path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--gpu", action="store_true", help="segmentation and guard cost only")
    args = p.parse_args()
    if not (DATA / "bedroom.mp4").exists():
        sys.exit(f"benchmarks need {DATA} (the real videos)")
    import torch

    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    image_size = 1024 if gpu else 256
    sizes = [50, 150] if args.quick else [50, 200, 400]
    if args.gpu:
        if not gpu:
            sys.exit("--gpu needs a CUDA GPU")
        sizes = [50, 400]
    runs = 2 if args.quick or args.gpu else 3
    result = {
        "date": dt.date.today().isoformat(),
        "quick": args.quick,
        "command": "python bench/run.py --gpu" if args.gpu else None,
        "machine": machine(),
        "device": device,
        "image_size": image_size,
        "model": "sam2.1_hiera_tiny (random weights)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.gpu:
            print("frame extraction", flush=True)
            result["extraction"] = bench_extraction(runs, work)  # bench/extraction.py
            print("workflow scale", flush=True)
            result["workflow_scale"] = bench_workflow_scale(
                [204, 1200] if args.quick else [204, 1200, 5004], 1 if args.quick else 3, work
            )
        print("segmentation", flush=True)
        result["segmentation"] = bench_segmentation(sizes, runs, image_size, device, work)
        save(result)
        print("guard cost", flush=True)
        pairs = 2 if args.gpu else runs + 1
        result["guard_cost"] = bench_guard_cost(100, pairs, image_size, device, work)
    path = save(result)
    print(f"wrote {path}")
    if not args.gpu:  # on a lent machine the table is regenerated where the result lands
        subprocess.run([PY, str(ROOT / "bench" / "table.py")], check=True)


if __name__ == "__main__":
    main()
