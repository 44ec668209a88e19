"""Rule segment_batch: sam2flow.segment.segment_folder on one batch."""

from pathlib import Path

from sam2flow.logs import run_script
from sam2flow.memory import GuardConfig
from sam2flow.models import ModelOptions
from sam2flow.plan.reruns import parse_rerun
from sam2flow.prompts import PromptOptions
from sam2flow.segment import segment_folder

memory = {**snakemake.config["memory"], **snakemake.params.memory}
run_script(
    snakemake.log[0],
    lambda: segment_folder(
        Path(snakemake.input.frames, snakemake.wildcards.batch),
        Path(snakemake.output.record).parent,
        prompt=PromptOptions(
            **snakemake.params.prompt, carry_from=snakemake.input.get("carry") or None
        ),
        model=ModelOptions.from_config(snakemake.params.model),
        memory=GuardConfig.from_options(memory, parse_rerun(snakemake.params.rerun)[0]),
        video=snakemake.wildcards.video,
        batch=snakemake.wildcards.batch,
        record_extra={"rerun_strategy": snakemake.params.rerun},
        mem_mb=snakemake.resources.get("mem_mb"),
        decoder=snakemake.params.decoder,
        fail_on_skip=memory.get("fail_on_skip", False),
        threads=snakemake.threads,
    ),
)
