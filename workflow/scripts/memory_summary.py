"""Rule memory_summary: sam2flow.report.write_summary."""

from sam2flow.logs import run_script
from sam2flow.report import write_summary

run_script(
    snakemake.log[0],
    lambda: write_summary(
        snakemake.input.records,
        snakemake.output.csv,
        snakemake.output.html,
        snakemake.output.skipped,
        videos=snakemake.params.videos,
    ),
)
