"""Rule fetch_checkpoint: sam2flow.models.resolve_checkpoint, once per run."""

from sam2flow.logs import run_script
from sam2flow.models import ModelOptions, resolve_checkpoint

model = ModelOptions.from_config(snakemake.params.model)
run_script(
    snakemake.log[0],
    lambda: resolve_checkpoint(
        model.checkpoint,
        model.name,
        model.checkpoint_dir,
        model.checkpoint_url,
        model.checkpoint_sha256,
    ),
)
