"""Rule demo_data: sam2flow.demo.write_demo."""

from pathlib import Path

from sam2flow.demo import write_demo
from sam2flow.logs import run_script

run_script(
    snakemake.log[0],
    lambda: write_demo(Path(snakemake.output.video).parent, frames=snakemake.params.frames),
)
