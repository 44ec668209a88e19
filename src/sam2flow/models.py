"""Models: the SAM 2 registry, checkpoints (download, verify, load) and building a predictor.

The model is built once per process from the configs packaged in sam2 1.1.0. ``weights``
is ``"checkpoint"`` (trained weights from a path or the registry) or ``"random"`` (the real
model with untrained weights: for tests and the offline demo only, and said loudly).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from .errors import BadValue, UserError
from .vocabulary import DEFAULT_CHECKPOINT_DIR, DEFAULT_MODEL

if TYPE_CHECKING:  # torch only where a model is built: the Snakefile reads the registry
    import torch

log = logging.getLogger(__name__)

RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS: the model is untrained, its masks are meaningless "
    "(tests and the offline demo only; configure a checkpoint for real work)"
)

_SAM21_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"
_CFG_SHORT = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: packaged config, official URL and (where published) sha256."""

    name: str
    config: str
    url: str
    sha256: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.name}.pt"


def _registry() -> dict[str, ModelSpec]:
    specs = {}
    for size, short in _CFG_SHORT.items():
        specs[f"sam2.1_hiera_{size}"] = ModelSpec(
            f"sam2.1_hiera_{size}",
            f"configs/sam2.1/sam2.1_hiera_{short}.yaml",
            f"{_SAM21_URL}sam2.1_hiera_{size}.pt",
        )
        specs[f"sam2_hiera_{size}"] = ModelSpec(
            f"sam2_hiera_{size}",
            f"configs/sam2/sam2_hiera_{short}.yaml",
            f"{_SAM2_URL}sam2_hiera_{size}.pt",
        )
    return specs


#: Known models. Meta publishes no checksums for these files; set ``checkpoint_sha256`` in
#: the config to pin one (the digest of each download is logged and recorded).
MODELS: dict[str, ModelSpec] = _registry()


def model_spec(name: str) -> ModelSpec:
    """Look a model up by name; an unknown name lists the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise UserError(f"unknown model {name!r}", None, f"use one of: {known}") from None


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | Path, sha256: str | None = None, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest``: resumes a partial ``.part`` file, verifies, renames.

    The final file only appears once complete and verified; concurrent callers share one
    download (a file lock). A failure is a ``UserError`` naming the URL and where to put
    the file by hand.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # One writer of the .part file: a second process waits, then finds the file done.
    with FileLock(dest.with_name(dest.name + ".lock")):
        if dest.is_file():
            return dest
        return _download(url, dest, sha256, timeout)


def _download(url: str, dest: Path, sha256: str | None, timeout: float) -> Path:
    part = dest.with_name(dest.name + ".part")
    manual = f"download it by hand from {url} and save it as {dest}"
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            mode = "ab" if have and response.status == 206 else "wb"
            with open(part, mode) as f:
                while block := response.read(1 << 20):
                    f.write(block)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot download checkpoint {url} ({reason})", dest, manual) from exc
    digest = sha256_of(part)
    if sha256 and digest != sha256.lower():
        part.unlink()
        raise UserError(f"sha256 mismatch for {url}: expected {sha256}, got {digest}", dest, manual)
    part.replace(dest)
    log.info("downloaded %s to %s (sha256 %s)", url, dest, digest)
    return dest


def resolve_checkpoint(
    checkpoint: str | Path,
    model: str,
    checkpoint_dir: str | Path = DEFAULT_CHECKPOINT_DIR,
    url: str | None = None,
    sha256: str | None = None,
) -> Path:
    """A checkpoint path from a file path or a registry name (downloaded when missing)."""
    text = str(checkpoint)
    if text in MODELS or text == "auto":
        spec = model_spec(model if text == "auto" else text)
        dest = Path(checkpoint_dir) / spec.filename
        if dest.exists():
            if sha256 and sha256_of(dest) != sha256.lower():
                raise UserError(
                    f"sha256 mismatch for existing checkpoint (expected {sha256})",
                    dest,
                    "delete the file and run again to download it afresh",
                )
            return dest
        return download(url or spec.url, dest, sha256 or spec.sha256)
    path = Path(text)
    if not path.is_file():
        raise UserError(
            "checkpoint file not found", path, "give an existing .pt file or a model name"
        )
    return path


@dataclass(frozen=True)
class ModelOptions:
    """Which SAM 2 model, with which weights, where and how: config ``model:`` and
    ``sam2flow segment``'s model options, read once into one type (hashable: a process
    builds each model once, ``build_model``)."""

    name: str = DEFAULT_MODEL
    weights: str = "checkpoint"  # checkpoint, random, or auto (the demo: a checkpoint if here)
    checkpoint: str = "auto"  # auto (the model's file in checkpoint_dir), a name or a .pt file
    image_size: int | None = None  # None: the model's own, 1024
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    checkpoint_dir: str = DEFAULT_CHECKPOINT_DIR
    checkpoint_url: str | None = None
    checkpoint_sha256: str | None = None

    @classmethod
    def from_config(cls, model: dict) -> ModelOptions:
        """From config ``model:`` (its schema has checked the values; a null is a default).

        >>> ModelOptions.from_config({"name": "sam2.1_hiera_small", "checkpoint_dir": None})
        ModelOptions(name='sam2.1_hiera_small', weights='checkpoint', checkpoint='auto', \
image_size=None, device='auto', precision='auto', compile=False, \
checkpoint_dir='resources/checkpoints', checkpoint_url=None, checkpoint_sha256=None)
        """
        given = {f.name: model[f.name] for f in fields(cls) if model.get(f.name) is not None}
        return cls(**given)

    @classmethod
    def from_args(cls, args) -> ModelOptions:
        """From ``sam2flow segment``'s options (``--model``, ``--weights``, ...)."""
        names = {f.name: "model" if f.name == "name" else f.name for f in fields(cls)}
        return cls(**{name: getattr(args, arg) for name, arg in names.items()})


def registry_checkpoint(model: ModelOptions) -> Path | None:
    """Where the workflow's ``fetch_checkpoint`` rule puts the checkpoint of config
    ``model``, or ``None`` when there is nothing to fetch (random weights, ``auto``, or a
    checkpoint given as a path).

    >>> registry_checkpoint(ModelOptions(checkpoint_dir="ckpt"))
    PosixPath('ckpt/sam2.1_hiera_tiny.pt')
    >>> registry_checkpoint(ModelOptions(weights="random")) is None
    True
    """
    if model.weights != "checkpoint" or model.checkpoint not in ("auto", *MODELS):
        return None
    spec = model_spec(model.name if model.checkpoint == "auto" else model.checkpoint)
    return Path(model.checkpoint_dir) / spec.filename


def own_checkpoint(model: ModelOptions) -> Path | None:
    """The checkpoint file config ``model`` names by path (a lab's fine-tuned weights,
    which may be trained again at the same path), or ``None`` for a registry checkpoint
    (its content is fixed by its name) and random weights.

    >>> own_checkpoint(ModelOptions(checkpoint="ckpt/mice.pt"))
    PosixPath('ckpt/mice.pt')
    >>> own_checkpoint(ModelOptions(checkpoint="sam2.1_hiera_small")) is None
    True
    """
    if model.weights == "random" or model.checkpoint in ("auto", *MODELS):
        return None
    return Path(model.checkpoint)


def load_state_dict(path: str | Path) -> dict:
    """Read a SAM 2 checkpoint (``{"model": state_dict}``) with ``weights_only=True``."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(
            f"not a readable PyTorch checkpoint ({type(exc).__name__})",
            path,
            "check the file is a SAM 2 .pt checkpoint and not truncated",
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise UserError(
            "not a SAM 2 checkpoint (expected a dict with a 'model' state_dict)",
            path,
            "use a checkpoint published by SAM 2 or saved as {'model': model.state_dict()}",
        )
    return data["model"]


def weights_signature(state: dict) -> tuple[int, int, bool]:
    """What tells the registry's models apart in a state dict: the image encoder's width
    and number of blocks, and whether it is SAM 2.1 (its spatial no-object embedding)."""
    pos = state.get("image_encoder.trunk.pos_embed")
    blocks = {k.split(".")[3] for k in state if k.startswith("image_encoder.trunk.blocks.")}
    width = int(pos.shape[1]) if pos is not None else 0
    return width, len(blocks), "no_obj_embed_spatial" in state


@functools.cache
def config_signature(name: str) -> tuple[int, int, bool]:
    """``weights_signature`` of a registry model, read from its packaged config (and the
    image encoder's defaults, which the base_plus configs rely on)."""
    import inspect

    import sam2
    from omegaconf import OmegaConf
    from sam2.modeling.backbones.hieradet import Hiera

    config = OmegaConf.load(Path(sam2.__file__).parent / model_spec(name).config).model
    trunk, default = config.image_encoder.trunk, inspect.signature(Hiera).parameters
    return (
        int(trunk.get("embed_dim", default["embed_dim"].default)),
        sum(trunk.get("stages", default["stages"].default)),
        bool(config.get("no_obj_embed_spatial", False)),
    )


def check_fit(state: dict, expected: dict, model: str, path: Path) -> None:
    """A checkpoint whose keys or shapes are not the model's is named, with the registry
    model it is (a ``large`` file given for ``tiny`` is the usual case), before torch's
    many-line error."""
    missing, unexpected = expected.keys() - state.keys(), state.keys() - expected.keys()
    shapes = [k for k in expected.keys() & state.keys() if state[k].shape != expected[k].shape]
    if not (missing or unexpected or shapes):
        return
    signature = weights_signature(state)
    other = next((n for n in MODELS if n != model and config_signature(n) == signature), None)
    raise UserError(
        f"checkpoint does not fit model {model} ({len(missing)} missing, "
        f"{len(unexpected)} unexpected, {len(shapes)} other-shaped keys)"
        + (f"; it is {other}'s" if other else ""),
        path,
        f"set the model name (model.name, --model) to {other}, or give {model}'s checkpoint"
        if other
        else f"give {model}'s checkpoint as SAM 2 publishes it, or the model it was made for",
    )


@dataclass
class LoadedModel:
    """A built predictor and the facts every report must carry."""

    predictor: object
    name: str
    weights: str  # "random" or the checkpoint path
    image_size: int
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype, None for fp32

    def autocast(self):
        """bf16 autocast on CUDA (when chosen), a no-op context elsewhere."""
        if self.dtype is not None and self.device.type == "cuda":
            import torch

            return torch.autocast("cuda", dtype=self.dtype)
        return contextlib.nullcontext()


def precision_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """bf16 on CUDA by default (TF32 switched on for Ampere and newer), fp32 elsewhere."""
    if precision not in ("auto", "bf16", "fp32"):
        raise BadValue(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if device.type != "cuda" or precision == "fp32":
        return None
    import torch

    if torch.cuda.get_device_properties(device).major >= 8:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return torch.bfloat16


@functools.lru_cache(maxsize=2)
def build_model(options: ModelOptions) -> LoadedModel:
    """Build the SAM 2 video predictor once per process (cached by its options)."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    from .memory.devices import resolve_device

    model, weights, checkpoint, image_size = (
        options.name,
        options.weights,
        options.checkpoint,
        options.image_size,
    )
    spec = model_spec(model)
    dev = resolve_device(options.device)
    if image_size is not None and (int(image_size) < 64 or int(image_size) % 32):
        raise UserError(
            f"image size {image_size} is not one SAM 2 supports",
            None,
            "use a multiple of 32 from 64 up (256, 512, 1024)",
        )
    overrides = [f"++model.image_size={int(image_size)}"] if image_size else []
    if options.compile:
        overrides.append("++model.compile_image_encoder=true")
    torch.manual_seed(0)  # random weights are the same in every process and run
    predictor = build_sam2_video_predictor(
        spec.config,
        None,
        device="cpu",
        mode="eval",
        hydra_overrides_extra=overrides,
        vos_optimized=options.compile,
    )
    if weights == "auto":  # the demo: a checkpoint if one is here, random weights otherwise
        local = (
            Path(options.checkpoint_dir) / spec.filename
            if checkpoint == "auto"
            else Path(checkpoint)
        )
        weights, checkpoint = (
            ("checkpoint", str(local)) if local.is_file() else ("random", checkpoint)
        )
    if weights == "random":
        log.warning(RANDOM_WEIGHTS_WARNING)
        weights_label = "random"
    elif weights == "checkpoint":
        path = resolve_checkpoint(
            checkpoint,
            model,
            options.checkpoint_dir,
            options.checkpoint_url,
            options.checkpoint_sha256,
        )
        state = load_state_dict(path)
        check_fit(state, predictor.state_dict(), model, path)
        predictor.load_state_dict(state)
        weights_label = str(path)
    else:
        raise UserError(
            f"unknown weights {weights!r}", None, "use 'checkpoint', 'random' or 'auto'"
        )
    predictor.to(dev)
    return LoadedModel(
        predictor=predictor,
        name=model,
        weights=weights_label,
        image_size=int(predictor.image_size),
        device=dev,
        dtype=precision_dtype(dev, options.precision),
    )
