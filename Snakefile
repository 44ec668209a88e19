# sam2flow: video -> JPEG batches -> SAM 2 inside the memory guard -> merged masks + report.
# Run: snakemake --cores N   (cluster: --profile profiles/slurm; see README.md)


from pathlib import Path

from snakemake.utils import min_version

from sam2flow.errors import or_exit
from sam2flow.jobenv import expose_library
from sam2flow.plan.schema import check_config

min_version("9.14.1")

# Jobs import this repository's library, also in --sdm conda environments (which hold the
# dependencies only) and on cluster nodes (sbatch exports the environment).
expose_library(workflow.basedir)


configfile: "config/config.yaml"


or_exit(
    check_config, config, Path(workflow.basedir, "workflow/schemas/config.schema.yaml")
)


include: "workflow/rules/common.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets,


onsuccess:
    print_run_summary()


onerror:
    write_partial_summary()
