# Sample sheet, wildcard constraints and every input function of the workflow.
import json
import re
from pathlib import Path

import pandas as pd
from snakemake.io import ancient

ENV = "../../envs/sam2flow.yaml"
DEMO_VIDEO = "resources/demo/demo.mp4"
DEMO_PREDICTIONS = "resources/demo/demo_predictions.csv"

videos = (
    pd.read_csv(config["videos"], sep="\t", dtype=str, comment="#")
    .fillna("")
    .set_index("video", drop=False)
)
validate(videos, "../schemas/videos.schema.yaml")


wildcard_constraints:
    video="|".join(map(re.escape, videos.index)) or "NO_VIDEOS",
    batch=r"\d{4}",


def made_here(path):
    """A path Snakemake can track: it exists, or a rule of this workflow makes it."""
    return Path(path).exists() or path in (DEMO_VIDEO, DEMO_PREDICTIONS)


def video_path(wildcards):
    return videos.loc[wildcards.video, "path"]


def video_input(wildcards):
    """The video, when it exists: a missing file fails only its own job, with a message."""
    path = video_path(wildcards)
    return [path] if made_here(path) else []


def prompts_input(wildcards):
    path = videos.loc[wildcards.video, "prompts"]
    return [path] if path and made_here(path) else []


def frames_dir(wildcards):
    """The video's frames folder (ancient: re-extracted frames do not redo finished batches)."""
    return ancient(checkpoints.extract_frames.get(video=wildcards.video).output.frames)


def batches_of(video):
    """Batch names of a video, read from the extraction's manifest."""
    out = checkpoints.extract_frames.get(video=video).output.frames
    return sorted(json.loads(Path(out, "frames.json").read_text())["batches"])


def batch_files(name):
    def files(wildcards):
        return expand(
            "results/{video}/batches/{batch}/{name}",
            video=wildcards.video,
            batch=batches_of(wildcards.video),
            name=name,
        )

    return files


def all_records(wildcards):
    return [
        f"results/{video}/batches/{batch}/memory.json"
        for video in videos.index
        for batch in batches_of(video)
    ]


def all_targets(wildcards):
    return [f"results/{video}/masks.npz" for video in videos.index] + [
        "results/memory_summary.csv"
    ]


def prompt_options(wildcards):
    """Keyword arguments of sam2flow.prompts.prompt_for_batch for this video."""
    row = videos.loc[wildcards.video]
    p = config["prompts"]
    frame = row.get("prompt_frame", "")
    return dict(
        prompts_file=row.get("prompts") or None,
        points=row.get("points") or None,
        box=row.get("box") or None,
        mask=row.get("mask") or None,
        prompt_frame=int(frame) if str(frame).strip() else None,
        bodyparts=list(p["bodyparts"]),
        cutoff=p["likelihood_cutoff"],
        scale=p["scale"],
        offset=tuple(p["offset"]),
    )


def rerun_strategy(wildcards):
    """How to redo this batch: '' normally; the configured strategy for a skipped batch
    when rerun_skipped is set. A batch once rerun keeps its strategy in memory.json, so
    this parameter (a rerun trigger) stays the same on later plain runs."""
    record = Path(f"results/{wildcards.video}/batches/{wildcards.batch}/memory.json")
    if not record.is_file():
        return ""
    data = json.loads(record.read_text())
    if data.get("rerun_strategy"):
        return data["rerun_strategy"]
    if config["rerun_skipped"] and data.get("status") == "skipped":
        return config["memory"]["rerun_strategy"]
    return ""


def scaled(key, name):
    """A resource that grows with the attempt: base x attempt (retries ask for more)."""
    base = config["resources"][key][name]
    return lambda wildcards, attempt: base * attempt
