"""Rule fetch_checkpoint: sam2flow.models.resolve_checkpoint, once per run."""

from sam2flow.logs import run_script
from sam2flow.models import resolve_checkpoint

model = snakemake.params.model
run_script(
    snakemake.log[0],
    lambda: resolve_checkpoint(
        model.get("checkpoint") or "auto",
        model["name"],
        model.get("checkpoint_dir") or "resources/checkpoints",
        model.get("checkpoint_url"),
        model.get("checkpoint_sha256"),
    ),
)
