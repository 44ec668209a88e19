"""Command line: the same public functions as the workflow, one subcommand each.

User errors (``UserError``, bad values) print as one line and exit with status 2; bugs keep
their tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

from .errors import HOST_OOM_EXIT, BadValue, UserError
from .logs import quiet_third_party
from .vocabulary import (
    DECODERS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_CUTOFF,
    DEFAULT_GROW_AFTER,
    DEFAULT_MIN_CHUNK,
    DEFAULT_MODEL,
    DEFAULT_QUALITY,
    DEFAULT_SIZING_FILE,
    DEFAULT_THRESHOLD,
)

log = logging.getLogger("sam2flow")


def _memory_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("memory guard")
    g.add_argument(
        "--max-gpu-memory-gb",
        type=float,
        default=None,
        help="cap on this process's GPU memory, in GiB (none: the whole GPU)",
    )
    g.add_argument(
        "--memory-threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="clean up (gc, empty_cache) between chunks above this used fraction, 0-1",
    )
    g.add_argument(
        "--min-chunk",
        type=int,
        default=DEFAULT_MIN_CHUNK,
        help="smallest chunk, in frames, that an out-of-memory retry splits a batch into",
    )
    g.add_argument(
        "--force-cpu-offload",
        action="store_true",
        help="start with frames and inference state offloaded to host memory",
    )
    g.add_argument(
        "--allow-cpu-fallback",
        action="store_true",
        help="after offload fails, run the batch on the CPU (slow) before skipping",
    )
    g.add_argument(
        "--disable-adaptive-batch-size",
        action="store_true",
        help="always start whole, ignoring the chunk sizes remembered in --sizing-file",
    )
    g.add_argument(
        "--disable-memory-monitoring",
        action="store_true",
        help="no memory snapshots (torch, NVML, host RSS) in memory.json",
    )
    g.add_argument(
        "--sizing-file",
        default=DEFAULT_SIZING_FILE,
        help="JSON file of chunk sizes that worked, shared by jobs on the same GPU model",
    )
    g.add_argument(
        "--sizing-grow-after",
        type=int,
        default=DEFAULT_GROW_AFTER,
        help="clean runs at a remembered chunk size before the whole batch is tried again",
    )


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="SAM 2 model: sam2.1_hiera_{tiny,small,base_plus,large} or sam2_hiera_{...}",
    )
    g.add_argument(
        "--checkpoint",
        default="auto",
        help="a .pt file, or auto: the model's file in --checkpoint-dir (downloaded if absent)",
    )
    g.add_argument(
        "--checkpoint-dir",
        default=DEFAULT_CHECKPOINT_DIR,
        help="folder where checkpoints are looked for and downloaded to",
    )
    g.add_argument(
        "--checkpoint-url",
        default=None,
        help="download the checkpoint from this URL (a mirror) instead of Meta's",
    )
    g.add_argument(
        "--checkpoint-sha256",
        default=None,
        help="expected sha256 of the checkpoint (none: logged, not checked)",
    )
    g.add_argument(
        "--weights",
        choices=["checkpoint", "random"],
        default="checkpoint",
        help="checkpoint: trained weights; random: untrained, masks are meaningless (tests)",
    )
    g.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="model input size in pixels, a multiple of 16 (none: the model's 1024)",
    )
    g.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA, then MPS, then CPU), cuda, cuda:N, mps or cpu",
    )
    g.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="auto: bf16 autocast on CUDA, fp32 elsewhere",
    )
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (SAM 2's vos_optimized; slow first batch)",
    )


def _pair(text: str) -> tuple[float, float]:
    """``X,Y`` as two numbers (``--offset``).

    >>> _pair(" -12.5, 3")
    (-12.5, 3.0)
    """
    from .prompts import finite_numbers

    numbers = finite_numbers(text) or []
    if len(numbers) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} must be X,Y: two finite numbers")
    return numbers[0], numbers[1]


def _above_zero(text: str) -> float:
    """A finite number above 0 (``--budget-gb``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number above 0")
    return value


def _at_least_one(text: str) -> int:
    """A whole number of 1 or more (threads, workers, frames), where 0 or -2 would be taken
    silently for the default or end in a traceback."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of 1 or more")
    return value


def _subcommand(sub, name: str, help: str) -> argparse.ArgumentParser:
    """A subcommand whose --help shows every option's default."""
    return sub.add_parser(
        name, help=help, description=help, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam2flow", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug log lines")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _subcommand(sub, "extract", "decode a video into JPEG batches")
    p.add_argument("--video", required=True, help="video file (anything FFmpeg/OpenCV decodes)")
    p.add_argument("--out", required=True, help="folder for the batch folders and frames.json")
    p.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="frames per batch folder"
    )
    p.add_argument("--quality", type=int, default=DEFAULT_QUALITY, help="JPEG quality, 1-100")
    p.add_argument(
        "--workers",
        type=_at_least_one,
        default=None,
        help="processes decoding ranges of the video (default: one per two cores, at most 4)",
    )

    p = _subcommand(sub, "segment", "segment one folder of JPEG frames")
    p.add_argument(
        "--frames",
        required=True,
        help="folder of JPEGs named by global frame index (00042.jpg, 0000042.jpg, ...)",
    )
    p.add_argument("--out", required=True, help="folder for masks.npz, frames.csv, memory.json")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompts", help="DeepLabCut prediction or label file (.csv/.h5)")
    src.add_argument(
        "--point", action="append", help="a click X,Y[,LABEL] in video pixels (repeatable)"
    )
    src.add_argument("--box", help="a box X0,Y0,X1,Y1 in video pixels")
    src.add_argument("--mask", help="a mask PNG the size of the frames (non-zero: the object)")
    p.add_argument(
        "--prompt-frame",
        type=int,
        default=None,
        help="global frame index of --point/--box/--mask (none: the folder's first frame)",
    )
    p.add_argument(
        "--carry-from",
        default=None,
        help="previous batch's masks.npz: start from its last masks where no prompt is given",
    )
    p.add_argument(
        "--carry-image",
        default=None,
        help="JPEG of the frame --carry-from ends on (none: found through frames.json)",
    )
    p.add_argument(
        "--bodyparts", default="", help="comma-separated DeepLabCut bodyparts (empty: all)"
    )
    p.add_argument(
        "--likelihood-cutoff",
        type=float,
        default=DEFAULT_CUTOFF,
        help="DeepLabCut points below this likelihood are not used, 0-1",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="DeepLabCut x and y times SCALE plus OFFSET are video pixels (a rescaled video)",
    )
    p.add_argument(
        "--offset",
        type=_pair,
        default="0,0",
        metavar="X,Y",
        help="see --scale (a cropped video; a negative one: --offset=-12,0)",
    )
    p.add_argument(
        "--video-frames",
        type=_at_least_one,
        default=None,
        help="check the DeepLabCut file has this many rows (none: from frames.json)",
    )
    p.add_argument("--video", default="", help="video name recorded in the outputs")
    p.add_argument("--batch", default="", help="batch name recorded in the outputs")
    p.add_argument(
        "--frame-decoder",
        choices=DECODERS,
        default=DECODERS[0],
        help="sam2: SAM 2's own loader (masks identical to stock SAM 2); opencv: faster",
    )
    p.add_argument(
        "--threads",
        type=_at_least_one,
        default=None,
        help="threads decoding frames ahead of the model (default: every core available)",
    )
    _model_args(p)
    _memory_args(p)

    p = _subcommand(sub, "init", "write a sample sheet for your videos and say what to run")
    p.add_argument("videos", nargs="+", help="video files, folders of videos or glob patterns")
    p.add_argument(
        "--dlc",
        action="append",
        default=[],
        help="folder of DeepLabCut outputs (repeatable; the videos' own folders are searched too)",
    )
    p.add_argument("--sheet", default="config/local_videos.tsv", help="sheet to write")
    p.add_argument("--config", default="config/config.yaml", help="the workflow's config")
    p.add_argument(
        "--local-config",
        default="config/local.yaml",
        help="config for this machine",
    )
    p.add_argument("--force", action="store_true", help="replace an existing sheet and config")

    p = _subcommand(sub, "demo-data", "write the synthetic demo video and its DLC file")
    p.add_argument("--out", default="demo", help="folder for demo.mp4 and its predictions")
    p.add_argument("--frames", type=_at_least_one, default=120, help="frames of the demo video")

    p = _subcommand(sub, "merge", "merge a video's batch outputs")
    p.add_argument("--batches", nargs="+", required=True, help="batch output folders of one video")
    p.add_argument("--out", required=True, help="folder for masks.h5 and tracks.csv")
    p.add_argument(
        "--video", default=None, help="draw overlay.mp4 and contact_sheet.png over this video"
    )

    p = _subcommand(sub, "summary", "memory summary of batch records")
    p.add_argument("--records", nargs="+", required=True, help="memory.json files")
    p.add_argument(
        "--out", required=True, help="folder for memory_summary.csv, .html and skipped.tsv"
    )
    p.add_argument(
        "--videos", nargs="*", default=None, help="every video of the run (missing: failed)"
    )

    p = _subcommand(sub, "memory", "memory status and planning")
    msub = p.add_subparsers(dest="memory_command", required=True)
    s = _subcommand(msub, "status", "a line per device")
    s.add_argument("--json", action="store_true", help="print JSON instead of lines")
    s = _subcommand(msub, "plan", "estimate and the largest batch that fits")
    s.add_argument("--frames", type=int, required=True, help="frames per batch")
    s.add_argument("--height", type=int, required=True, help="video height in pixels")
    s.add_argument("--width", type=int, required=True, help="video width in pixels")
    s.add_argument("--objects", type=int, default=1, help="objects tracked")
    s.add_argument("--model", default=DEFAULT_MODEL, help="SAM 2 model name")
    s.add_argument("--image-size", type=int, default=1024, help="model input size in pixels")
    s.add_argument("--budget-gb", type=_above_zero, default=None, help="memory budget in GiB")
    s.add_argument("--offload", action="store_true", help="with CPU offload")
    s.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="where it runs")
    s.add_argument("--stock", action="store_true", help="model stock SAM 2 (keeps every frame)")
    return parser


@contextlib.contextmanager
def user_values():
    """The memory library (which knows nothing of sam2flow's errors) checks values with
    ``ValueError``: those it raised on what the user asked are ``BadValue``s here."""
    try:
        yield
    except BadValue:
        raise
    except ValueError as exc:
        raise BadValue(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_third_party()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _COMMANDS[args.command](args)
    except (UserError, BadValue) as exc:  # any other ValueError is a bug: its traceback
        print(f"sam2flow {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # host memory: smaller chunks cannot help, more memory can
        print(f"sam2flow {args.command}: error: out of host memory: {exc}", file=sys.stderr)
        return HOST_OOM_EXIT


def _extract(args) -> int:
    from .extract import extract_batches
    from .ranges import workers_for

    workers = args.workers or workers_for(len(os.sched_getaffinity(0)))
    result = extract_batches(args.video, args.out, args.batch_size, args.quality, workers=workers)
    print(f"{result.frames} frames in {len(result.batches)} batches -> {args.out}")
    return 0


def _init(args) -> int:
    import os
    import shutil

    import yaml

    from .atomic import write_text
    from .models import ModelOptions, model_spec, registry_checkpoint
    from .probe import probe_video
    from .samplesheet import find_videos, sheet_for

    videos = find_videos(args.videos)
    if not videos:
        raise UserError("no video files found", " ".join(args.videos), "give videos or folders")
    for folder in args.dlc:  # a typo would leave every video without its DeepLabCut file
        if not Path(folder).is_dir():
            raise UserError(
                "--dlc names no folder",
                folder,
                "give the folder that holds the DeepLabCut .csv/.h5 files",
            )
    folders = {v.parent for v in videos} | {Path(d) for d in args.dlc}
    dlc = sorted({p.resolve() for d in folders for p in Path(d).glob("*DLC_*") if p.is_file()})
    table, notes = sheet_for(videos, dlc)
    notes += [w for video in videos for w in probe_video(video)]
    sheet, local = Path(args.sheet), Path(args.local_config)
    for path in (sheet, local):
        if path.exists() and not args.force:
            raise UserError("file exists", path, "pass --force to replace it")
    write_text(sheet, table.to_csv(sep="\t", index=False))
    for row in table.itertuples():
        print(f"{row.video}: {row.path}" + (f"\n  prompts: {row.prompts}" if row.prompts else ""))
    for note in notes:
        print(f"warning: {note}")
    print(f"wrote {sheet} ({len(table)} videos)")

    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        print(f"GPU: {props.name}, {props.total_memory / 2**30:.1f} GiB")
    else:
        print("GPU: none here (the CPU works, slowly; a cluster's GPU nodes are faster)")
    config = Path(args.config)
    given = (yaml.safe_load(config.read_text()) or {}).get("model") if config.is_file() else {}
    model = replace(ModelOptions.from_config(given or {}), weights="checkpoint")
    spec = model_spec(model.name)
    checkpoint = registry_checkpoint(model) or Path(model.checkpoint)
    settings: dict = {"videos": str(sheet)}
    if checkpoint.is_file():
        print(f"checkpoint: {checkpoint}")
    else:
        print(f"checkpoint: none at {checkpoint}; download {spec.url} there")
        print("  (on a machine with internet: compute nodes are often offline), then delete")
        print(f"  the model lines of {local}. Until then it runs untrained weights at 256 px:")
        print("  the pipeline works end to end, but the masks are meaningless.")
        settings["model"] = {"weights": "random", "image_size": 256}
    write_text(local, yaml.safe_dump(settings, sort_keys=False))
    print(f"wrote {local}")
    files = f"--configfile {config} {local}"
    # One batch per GPU at a time: each segment_batch job asks for gpu=1.
    gpus = max(1, torch.cuda.device_count())
    print(f"next: snakemake --cores {os.cpu_count() or 1} --resources gpu={gpus} {files}")
    if shutil.which("sbatch"):
        print("SLURM: found; jobs go to the default partition under your account unless you")
        print("  name others in profiles/slurm/config.yaml (default-resources), then")
        print(f"next (SLURM): snakemake --profile profiles/slurm {files}")
    print("(run these from the repository, with its environment: source .venv/bin/activate)")
    return 0


def guard_config(args):
    """The memory options, checked against the config's schema (one rule for both)."""
    from .memory import GuardConfig
    from .plan.schema import check_options

    options = dict(
        max_gpu_memory_gb=args.max_gpu_memory_gb,
        memory_threshold=args.memory_threshold,
        min_chunk=args.min_chunk,
        force_cpu_offload=args.force_cpu_offload,
        allow_cpu_fallback=args.allow_cpu_fallback,
        adaptive_batch_size=not args.disable_adaptive_batch_size,
        monitoring=not args.disable_memory_monitoring,
        sizing_file=args.sizing_file,
        sizing_grow_after=args.sizing_grow_after,
    )
    check_options("memory", {k: v for k, v in options.items() if k != "sizing_file"})
    with user_values():
        return GuardConfig(**options)


def _segment(args) -> int:
    from .models import ModelOptions
    from .plan.schema import check_options
    from .prompts import PromptOptions
    from .segment import segment_folder

    given = {"likelihood_cutoff": args.likelihood_cutoff, "scale": args.scale}
    check_options("prompts", {**given, "offset": list(args.offset)})

    record = segment_folder(
        args.frames,
        args.out,
        prompt=PromptOptions.from_args(args),
        model=ModelOptions.from_args(args),
        memory=guard_config(args),
        video=args.video,
        batch=args.batch,
        progress=sys.stderr.isatty(),
        decoder=args.frame_decoder,
        threads=args.threads,
    )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(record["frame_status"].items()))
    print(f"batch {record['status']}: {record['frames_total']} frames ({counts}) -> {args.out}")
    return 0


def _demo_data(args) -> int:
    from .demo import write_demo

    paths = write_demo(args.out, frames=args.frames)
    print(f"demo video {paths['video']} and predictions {paths['predictions']}")
    return 0


def _merge(args) -> int:
    from .outputs import merge_video
    from .overlay import render_overlay

    table = merge_video(args.batches, args.out)
    if args.video:
        out = Path(args.out)
        render_overlay(args.video, out / "masks.h5", out / "overlay.mp4", out / "contact_sheet.png")
    print(f"{table['frame'].nunique()} frames -> {args.out}")
    return 0


def _summary(args) -> int:
    from .report import write_summary

    out = Path(args.out)
    summary = write_summary(
        args.records,
        out / "memory_summary.csv",
        out / "memory_report.html",
        out / "skipped.tsv",
        videos=args.videos,
    )
    print(f"{len(summary)} batches -> {args.out}")
    return 0


def _memory(args) -> int:
    from .memory import monitoring
    from .memory.estimate import estimate, largest_batch_that_fits

    if args.memory_command == "status":
        rows = monitoring.device_status()
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            for row in rows:
                print(monitoring.format_status(row))
        return 0
    kwargs = dict(
        objects=args.objects,
        model=args.model,
        image_size=args.image_size,
        offload=args.offload,
        device=args.device,
        bounded=not args.stock,
    )
    with user_values():  # the memory library's own checks of what was asked
        need = estimate(args.frames, args.height, args.width, **kwargs)
    gib = 1024**3
    print(
        f"estimate: {need / gib:.2f} GiB for {args.frames} frames of {args.width}x{args.height}, "
        f"{args.objects} object(s), {args.model} at {args.image_size} "
        f"({'stock SAM 2' if args.stock else 'sam2flow'}{', offload' if args.offload else ''})"
    )
    if args.budget_gb:
        fits = largest_batch_that_fits(int(args.budget_gb * gib), args.height, args.width, **kwargs)
        if fits >= 10_000_000:
            print(
                f"budget {args.budget_gb:g} GiB: fits any batch length "
                "(memory does not grow with frames)"
            )
        else:
            print(f"budget {args.budget_gb:g} GiB: largest batch that fits is {fits} frames")
    return 0


_COMMANDS = {
    "init": _init,
    "extract": _extract,
    "segment": _segment,
    "demo-data": _demo_data,
    "merge": _merge,
    "summary": _summary,
    "memory": _memory,
}

if __name__ == "__main__":
    sys.exit(main())
