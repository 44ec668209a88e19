# Sample sheet, wildcard constraints and every input function of the workflow.
import functools
import json
import re
from pathlib import Path

import pandas as pd
from snakemake.exceptions import IncompleteCheckpointException
from snakemake.io import ancient

from sam2flow.errors import UserError, or_exit
from sam2flow.frame_folders import lasting_batches
from sam2flow.identity import file_identity
from sam2flow.plan.grouping import group_id, group_name, group_predecessor
from sam2flow.plan.inputs import tracked
from sam2flow.plan.settings import mask_settings
from sam2flow.models import ModelOptions, own_checkpoint, registry_checkpoint
from sam2flow.prompts import PromptOptions
from sam2flow.samplesheet import read_sample_sheet
from sam2flow.vocabulary import BATCH_PATTERN, batches_in_order

ENV = "../../envs/sam2flow.yaml"
DEMO_VIDEO = "resources/demo/demo.mp4"
DEMO_PREDICTIONS = "resources/demo/demo_predictions.csv"
DEMO_FILES = (DEMO_VIDEO, DEMO_PREDICTIONS)
# --config rerun_skipped=true arrives as a string; the config file gives a boolean.
RERUN_SKIPPED = str(config["rerun_skipped"]).lower() == "true"

MODEL = ModelOptions.from_config(config["model"])
CHECKPOINT = or_exit(registry_checkpoint, MODEL)
OWN_CHECKPOINT = own_checkpoint(MODEL)
videos = or_exit(
    read_sample_sheet,
    config["videos"],
    Path(workflow.basedir, "workflow/schemas/videos.schema.yaml"),
)


wildcard_constraints:
    video="|".join(map(re.escape, videos.index)) or "NO_VIDEOS",
    batch=BATCH_PATTERN,


def video_path(wildcards):
    return videos.loc[wildcards.video, "path"]


def video_input(wildcards):
    """The video, when it exists: a missing file fails only its own job, with a message."""
    return tracked([video_path(wildcards)], DEMO_FILES)


def prompt_files(video):
    """The video's prompt files in the sheet: its DeepLabCut file and its mask PNG."""
    return [path for path in videos.loc[video, ["prompts", "mask"]] if path]


def prompts_input(wildcards):
    """The prompt files that exist: an edited one redoes the video's batches."""
    return tracked(prompt_files(wildcards.video), DEMO_FILES)


def frames_dir(wildcards):
    """The video's frames folder (ancient: re-extracted frames do not redo finished batches)."""
    return ancient(f"results/{wildcards.video}/frames")


def listing_path(video):
    return f"results/{video}/frames.json"


def batches_of(video):
    """Batch names of a video, in order."""
    return batches_in_order(batch_ranges(video))


def batch_ranges(video):
    """Batch name -> [first, last] frame of a video: from the manifest's lasting copy while
    it matches (sam2flow.frame_folders.lasting_batches), so that frames deleted as temp() are not
    extracted again unless a batch that needs them must be redone; else the checkpoint.
    """
    lasting = lasting_batches(
        listing_path(video), videos.loc[video, "path"], config["batch_size"]
    )
    if lasting is not None:
        return lasting
    out = checkpoints.extract_frames.get(video=video).output.frames
    return json.loads(Path(out, "frames.json").read_text())["batches"]


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
    """Every video's masks and the summary; the checkpoint first, so that an offline
    machine fails that one job at once instead of after extraction."""
    return (
        [str(CHECKPOINT)] * bool(CHECKPOINT)
        + [f"results/{video}/masks.h5" for video in videos.index]
        + ["results/memory_summary.csv"]
    )


def segment_group(wildcards):
    """The Snakemake group of a batch (None: one job per batch)."""
    group = group_name(
        wildcards.batch, batches_of(wildcards.video), config["group_batches"]
    )
    return group_id(wildcards.video, group) if group else None


def group_predecessor_input(wildcards):
    """The record of the batch this one runs after in its group (sam2flow.plan.grouping).
    ancient(): redoing that batch does not redo this one."""
    before = group_predecessor(
        wildcards.batch, batches_of(wildcards.video), config["group_batches"]
    )
    if before is None:
        return []
    return ancient(f"results/{wildcards.video}/batches/{before}/memory.json")


def video_source(wildcards):
    """The identity of the file at the video's path (sam2flow.identity): a video replaced
    in place, even by an older copy, is extracted and segmented again."""
    return file_identity(video_path(wildcards))


def batch_source(wildcards):
    """What a batch's masks are made of besides the prompt options and the model: the
    video's content, the batch's frames and their JPEG quality, and the content of its
    prompt files. A parameter, so that a changed batch_size or a video or prompt file
    replaced in place (even by an older copy) redoes the batch instead of keeping stale
    masks."""
    return {
        "video": video_source(wildcards),
        "frames": batch_ranges(wildcards.video)[wildcards.batch],
        "jpeg_quality": config["jpeg_quality"],
        "prompt_files": {p: file_identity(p) for p in prompt_files(wildcards.video)},
    }


def prompt_options(wildcards):
    """The video's prompt options as the job's parameter (a change reruns its batches)."""
    return video_prompt_options(wildcards.video).job_params()


def video_prompt_options(video):
    """sam2flow.prompts.PromptOptions of a video: its sheet row and config 'prompts'."""
    return PromptOptions.from_config(videos.loc[video].to_dict(), config["prompts"])


@functools.cache
def skipped_batches():
    """(video, batch) -> reruns so far, of the batches in results/skipped.tsv."""
    from sam2flow.plan.reruns import listed_skipped

    return listed_skipped("results/skipped.tsv")


@functools.cache
def own_prompts(video):
    """Batches of a video that have a prompt of their own (sam2flow.plan.carry). A prompt file
    that cannot be read fails that video's first batch, with its message, not the plan
    of every video: its other batches wait on that one."""
    from sam2flow.plan.carry import own_prompt_batches

    try:
        return frozenset(
            own_prompt_batches(batch_ranges(video), video_prompt_options(video))
        )
    except UserError as exc:
        logger.warning(f"sam2flow: {video}: {exc}")
        return frozenset()


def previous_batch(wildcards):
    """The previous batch's masks, when this batch starts from them (config 'carry')."""
    from sam2flow.plan.carry import carry_source

    mode = config["carry"]
    if mode == "independent":
        return []
    source = carry_source(
        wildcards.batch, batches_of(wildcards.video), mode, own_prompts(wildcards.video)
    )
    return f"results/{wildcards.video}/batches/{source}/masks.npz" if source else []


def rerun_strategy(wildcards):
    """How to redo this batch (sam2flow.plan.reruns): a parameter, so a change reruns the job."""
    from sam2flow.plan.reruns import rerun_value

    record = Path(f"results/{wildcards.video}/batches/{wildcards.batch}/memory.json")
    return rerun_value(
        json.loads(record.read_text()) if record.is_file() else None,
        skipped_batches().get((wildcards.video, wildcards.batch)),
        RERUN_SKIPPED,
        config["memory"]["rerun_strategy"],
    )


def write_partial_summary():
    """After a failed run (--keep-going): the summary of the sheet's videos, each batch
    planned from its lasting listing (none where extraction failed), and what it says.
    """
    from sam2flow.report import summary_lines, write_partial_summary

    plan = {
        video: lasting_batches(
            listing_path(video), videos.loc[video, "path"], config["batch_size"]
        )
        for video in videos.index
    }
    summary = write_partial_summary("results", plan)
    logger.warning("sam2flow: PARTIAL memory report: results/memory_report.html")
    for line in summary_lines(summary, list(videos.index)):
        logger.warning(f"sam2flow: {line}")


def print_run_summary():
    """After a run that finished: what its summary says, in a few lines."""
    from sam2flow.report import read_summary, summary_lines

    path = Path("results/memory_summary.csv")
    if path.is_file():
        for line in summary_lines(read_summary(path), list(videos.index)):
            logger.info(f"sam2flow: {line}")


def model_params(wildcards):
    """Config 'model', and the content of a checkpoint named by path (sam2flow.identity):
    fine-tuned weights trained again at the same path redo the batches."""
    if OWN_CHECKPOINT is None:
        return config["model"]
    return {**config["model"], "checkpoint_identity": file_identity(OWN_CHECKPOINT)}


def checkpoint_input(wildcards):
    """The fetched checkpoint, when the model loads one from the registry. ancient(): a
    checkpoint fetched after a batch ran does not make the batch run again."""
    return ancient(str(CHECKPOINT)) if CHECKPOINT else []


def scaled(key, name):
    """A resource that grows with the attempt: base x attempt (retries ask for more)."""
    base = config["resources"][key][name]
    return lambda wildcards, attempt: base * attempt


def merge_runtime(wildcards, attempt):
    """merge_video's minutes grow with the video's frames (sam2flow.plan.resources). Before
    the video is extracted its length is unknown: the job is planned again once it is,
    and until then asks for the fixed part (Snakemake 9.27 turns a checkpoint it waits
    for inside a resource function into a value its dry run cannot print)."""
    from sam2flow.plan.resources import per_video_runtime

    try:
        ranges = batch_ranges(wildcards.video)
    except IncompleteCheckpointException:
        ranges = {}
    frames = max((last + 1 for _, last in ranges.values()), default=0)
    res = config["resources"]["merge_video"]
    return per_video_runtime(
        res["runtime"], res["minutes_per_10k_frames"], frames, attempt
    )
