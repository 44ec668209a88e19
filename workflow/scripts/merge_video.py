"""Rule merge_video: sam2flow.outputs.merge_video, then the overlay and contact sheet."""

from pathlib import Path

from sam2flow.logs import run_script
from sam2flow.outputs import merge_video
from sam2flow.overlay import render_overlay


def main():
    merge_video(
        [Path(p).parent for p in snakemake.input.masks], Path(snakemake.output.masks).parent
    )
    render_overlay(
        snakemake.params.video,
        snakemake.output.masks,
        snakemake.output.overlay,
        snakemake.output.sheet,
    )


run_script(snakemake.log[0], main)
