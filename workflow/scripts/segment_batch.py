"""Rule segment_batch: sam2flow.segment.segment_folder on one batch, in this process or,
for grouped batches, in the group's worker process (sam2flow.worker.segment_job)."""

from pathlib import Path

from sam2flow.logs import run_script
from sam2flow.memory import GuardConfig
from sam2flow.models import ModelOptions
from sam2flow.plan.reruns import parse_rerun
from sam2flow.prompts import PromptOptions
from sam2flow.worker import group_worker, segment_job


def main():
    config, params, wildcards = snakemake.config, snakemake.params, snakemake.wildcards
    memory = {**config["memory"], **params.memory}
    model = ModelOptions.from_config(params.model)
    call = dict(
        frames_dir=Path(snakemake.input.frames, wildcards.batch),
        out_dir=Path(snakemake.output.record).parent,
        prompt=PromptOptions(**params.prompt, carry_from=snakemake.input.get("carry") or None),
        model=model,
        memory=GuardConfig.from_options(memory, parse_rerun(params.rerun)[0]),
        video=wildcards.video,
        batch=wildcards.batch,
        record_extra={"rerun_strategy": params.rerun},
        mem_mb=snakemake.resources.get("mem_mb"),
        decoder=params.decoder,
        fail_on_skip=memory.get("fail_on_skip", False),
        threads=snakemake.threads,
    )
    worker = group_worker(
        snakemake.input.frames,
        wildcards.video,
        wildcards.batch,
        config["group_batches"],
        model,
        config.get("group_process", True),
    )
    return segment_job(worker, **call)


run_script(snakemake.log[0], main)
