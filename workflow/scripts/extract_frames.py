"""Rule extract_frames: sam2flow.extract.reuse_or_extract (the video decoded once; a later run
writes the manifest and lets each batch job that runs decode its own frames)."""

from sam2flow.extract import reuse_or_extract
from sam2flow.logs import run_script
from sam2flow.ranges import workers_for

run_script(
    snakemake.log[0],
    lambda: reuse_or_extract(
        snakemake.params.video,
        snakemake.output.frames,
        snakemake.params.batch_size,
        snakemake.params.quality,
        listing=snakemake.params.listing,
        workers=workers_for(snakemake.threads),
    ),
)
