"""Rule extract_frames: sam2flow.frames.extract_batches (plus a lasting copy of the manifest)."""

from sam2flow.frames import extract_batches
from sam2flow.logs import run_script

run_script(
    snakemake.log[0],
    lambda: extract_batches(
        snakemake.params.video,
        snakemake.output.frames,
        snakemake.params.batch_size,
        snakemake.params.quality,
        listing=snakemake.params.listing,
    ),
)
