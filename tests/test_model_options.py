"""Models without building one: the registry, where a checkpoint is looked for, what a
checkpoint file must hold, precision, and the options read from the config and the
command line."""

import contextlib
import logging
from pathlib import Path

import pytest
import torch

from sam2flow.cli import build_parser
from sam2flow.errors import BadValue, UserError
from sam2flow.models import (
    MODELS,
    LoadedModel,
    ModelOptions,
    build_model,
    download,
    load_state_dict,
    own_checkpoint,
    precision_dtype,
    registry_checkpoint,
    resolve_checkpoint,
    weights_signature,
)


@pytest.mark.parametrize(
    ("name", "config", "url"),
    [
        (
            "sam2.1_hiera_base_plus",
            "configs/sam2.1/sam2.1_hiera_b+.yaml",
            "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_base_plus.pt",
        ),
        (
            "sam2_hiera_large",
            "configs/sam2/sam2_hiera_l.yaml",
            "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_large.pt",
        ),
        (
            "sam2.1_hiera_small",
            "configs/sam2.1/sam2.1_hiera_s.yaml",
            "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_small.pt",
        ),
        (
            "sam2_hiera_tiny",
            "configs/sam2/sam2_hiera_t.yaml",
            "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_tiny.pt",
        ),
    ],
)
def test_the_registry_names_sam2s_packaged_config_and_metas_file(name, config, url):
    spec = MODELS[name]
    assert (spec.name, spec.config, spec.url, spec.sha256) == (name, config, url, None)
    assert spec.filename == f"{name}.pt" and len(MODELS) == 8


def test_an_existing_checkpoint_is_used_without_a_download(tmp_path):
    path = tmp_path / "sam2_hiera_small.pt"
    path.write_bytes(b"weights")
    unreachable = "http://127.0.0.1:9/x.pt"
    assert (
        resolve_checkpoint("sam2_hiera_small", "sam2.1_hiera_tiny", tmp_path, unreachable) == path
    )
    mine = tmp_path / "sam2.1_hiera_tiny.pt"
    mine.write_bytes(b"mine")
    assert resolve_checkpoint("auto", "sam2.1_hiera_tiny", tmp_path, unreachable) == mine
    assert download(unreachable, mine) == mine  # the finished file is not fetched again


def test_an_existing_checkpoint_with_another_sha256_is_refused(tmp_path):
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    path.write_bytes(b"weights")
    import hashlib

    good = hashlib.sha256(b"weights").hexdigest()
    assert resolve_checkpoint("auto", "sam2.1_hiera_tiny", tmp_path, None, good.upper()) == path
    with pytest.raises(UserError) as info:
        resolve_checkpoint("auto", "sam2.1_hiera_tiny", tmp_path, None, "0" * 64)
    assert str(info.value) == (
        f"sha256 mismatch for existing checkpoint (expected {'0' * 64}): {path}: "
        "delete the file and run again to download it afresh"
    )


def test_only_a_checkpoint_named_by_path_is_the_labs_own_file():
    """Its content is followed between runs (fine-tuned weights trained again); a registry
    checkpoint's content is fixed by its name, random weights have none."""
    assert own_checkpoint(ModelOptions(checkpoint="ckpt/mice.pt")) == Path("ckpt/mice.pt")
    assert own_checkpoint(ModelOptions(weights="auto", checkpoint="m.pt")) == Path("m.pt")
    for options in (
        ModelOptions(),
        ModelOptions(checkpoint="sam2_hiera_large"),
        ModelOptions(weights="auto"),
        ModelOptions(weights="random", checkpoint="m.pt"),
    ):
        assert own_checkpoint(options) is None, options


def test_weights_without_an_image_encoder_have_no_registry_signature():
    assert weights_signature({}) == (0, 0, False)
    assert weights_signature({"no_obj_embed_spatial": torch.zeros(1)}) == (0, 0, True)


def test_a_checkpoint_given_as_a_path_must_exist(tmp_path):
    given = tmp_path / "mine.pt"
    with pytest.raises(UserError) as info:
        resolve_checkpoint(str(given), "sam2.1_hiera_tiny", tmp_path)
    assert str(info.value) == (
        f"checkpoint file not found: {given}: give an existing .pt file or a model name"
    )
    given.write_bytes(b"x")
    assert resolve_checkpoint(given, "sam2.1_hiera_tiny", tmp_path / "elsewhere") == given


@pytest.mark.parametrize(
    ("options", "where"),
    [
        (ModelOptions(), "resources/checkpoints/sam2.1_hiera_tiny.pt"),
        (ModelOptions(name="sam2_hiera_large", checkpoint_dir="c"), "c/sam2_hiera_large.pt"),
        (ModelOptions(checkpoint="sam2_hiera_small", checkpoint_dir="c"), "c/sam2_hiera_small.pt"),
        (ModelOptions(weights="random"), None),
        (ModelOptions(weights="auto"), None),
        (ModelOptions(checkpoint="my/own.pt"), None),
    ],
)
def test_the_workflow_fetches_only_a_registry_checkpoint(options, where):
    found = registry_checkpoint(options)
    assert (str(found) if found else None) == where


def test_a_dict_that_is_not_a_sam2_checkpoint_is_named(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(UserError) as info:
        load_state_dict(path)
    assert str(info.value) == (
        f"not a SAM 2 checkpoint (expected a dict with a 'model' state_dict): {path}: "
        "use a checkpoint published by SAM 2 or saved as {'model': model.state_dict()}"
    )
    torch.save({"model": {"w": torch.ones(2)}}, path)
    assert torch.equal(load_state_dict(path)["w"], torch.ones(2))
    torch.save([1, 2], path)
    with pytest.raises(UserError, match="not a SAM 2 checkpoint"):
        load_state_dict(path)


def test_a_file_torch_cannot_read_names_the_reason(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(UserError) as info:
        load_state_dict(path)
    assert str(info.value).startswith("not a readable PyTorch checkpoint (") and str(path) in str(
        info.value
    )
    assert str(info.value).endswith("check the file is a SAM 2 .pt checkpoint and not truncated")


class Props:
    def __init__(self, major):
        self.major = major


@pytest.mark.parametrize(("major", "tf32"), [(8, True), (9, True), (7, False)])
def test_bf16_on_cuda_with_tf32_from_ampere_on(monkeypatch, major, tf32):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props(major))
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:  # torch's flags are not attributes monkeypatch can restore
        assert precision_dtype(torch.device("cuda", 0)) is torch.bfloat16
        assert precision_dtype(torch.device("cuda", 0), "bf16") is torch.bfloat16
        assert torch.backends.cuda.matmul.allow_tf32 is tf32
        assert torch.backends.cudnn.allow_tf32 is tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_fp32_off_cuda_or_when_asked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props(9))
    assert precision_dtype(torch.device("cuda", 0), "fp32") is None
    assert precision_dtype(torch.device("cpu")) is None
    assert precision_dtype(torch.device("cpu"), "bf16") is None
    with pytest.raises(BadValue) as info:
        precision_dtype(torch.device("cpu"), "fp16")
    assert str(info.value) == "precision must be auto, bf16 or fp32, got 'fp16'"


def test_autocast_only_for_bf16_on_cuda():
    def loaded(device, dtype):
        return LoadedModel(None, "m", "random", 256, torch.device(device), dtype)

    assert isinstance(loaded("cpu", None).autocast(), contextlib.nullcontext)
    assert isinstance(loaded("cpu", torch.bfloat16).autocast(), contextlib.nullcontext)
    assert isinstance(loaded("cuda", None).autocast(), contextlib.nullcontext)
    with pytest.warns(UserWarning):  # no CUDA here: torch says so, and the object is made
        context = loaded("cuda", torch.bfloat16).autocast()
    assert isinstance(context, torch.autocast)
    assert (context.device, context.fast_dtype) == ("cuda", torch.bfloat16)


@pytest.mark.parametrize("size", [32, 100, 250])
def test_an_image_size_sam2_cannot_run_is_named_before_building(size):
    with pytest.raises(UserError) as info:
        build_model(ModelOptions(weights="random", image_size=size, device="cpu"))
    assert str(info.value) == (
        f"image size {size} is not one SAM 2 supports: use a multiple of 32 from 64 up "
        "(256, 512, 1024)"
    )


def test_unknown_weights_are_named(caplog):
    with pytest.raises(UserError) as info:
        build_model(ModelOptions(weights="pretrained", image_size=64, device="cpu"))
    assert str(info.value) == "unknown weights 'pretrained': use 'checkpoint', 'random' or 'auto'"


def test_auto_weights_take_a_checkpoint_when_there_and_random_weights_otherwise(
    tmp_path, checkpoint_server, caplog
):
    caplog.set_level(logging.WARNING, logger="sam2flow.models")
    options = ModelOptions(
        weights="auto", image_size=64, device="cpu", checkpoint_dir=str(tmp_path)
    )
    assert build_model(options).weights == "random"
    _, original, _ = checkpoint_server
    (tmp_path / "sam2.1_hiera_tiny.pt").write_bytes(original.read_bytes())
    fresh = ModelOptions(weights="auto", image_size=96, device="cpu", checkpoint_dir=str(tmp_path))
    assert build_model(fresh).weights == str(tmp_path / "sam2.1_hiera_tiny.pt")
    given = ModelOptions(weights="auto", checkpoint=str(original), image_size=64, device="cpu")
    assert build_model(given).weights == str(original)


def test_options_from_the_config_keep_defaults_for_nulls_and_ignore_other_keys():
    options = ModelOptions.from_config(
        {"name": "sam2_hiera_small", "image_size": 512, "checkpoint_url": None, "other": 1}
    )
    assert options == ModelOptions(name="sam2_hiera_small", image_size=512)
    assert ModelOptions.from_config({}) == ModelOptions()


def test_options_from_the_command_line():
    args = build_parser().parse_args(
        "segment --frames f --out o --point 1,2 --model sam2_hiera_large --weights random "
        "--checkpoint c.pt --image-size 512 --device cpu --precision fp32 --compile "
        "--checkpoint-dir d --checkpoint-url http://m/x.pt --checkpoint-sha256 ab".split()
    )
    assert ModelOptions.from_args(args) == ModelOptions(
        "sam2_hiera_large", "random", "c.pt", 512, "cpu", "fp32", True, "d", "http://m/x.pt", "ab"
    )
    plain = build_parser().parse_args("segment --frames f --out o --point 1,2".split())
    assert ModelOptions.from_args(plain) == ModelOptions()


def test_a_registry_checkpoint_is_downloaded_with_the_sha256_asked_for(checkpoint_server, tmp_path):
    url, _, sha = checkpoint_server
    with pytest.raises(UserError, match="sha256 mismatch"):
        resolve_checkpoint(
            "auto", "sam2.1_hiera_tiny", tmp_path, f"{url}/sam2.1_hiera_tiny.pt", "0" * 64
        )
    got = resolve_checkpoint(
        "auto", "sam2.1_hiera_tiny", tmp_path, f"{url}/sam2.1_hiera_tiny.pt", sha
    )
    assert got == tmp_path / "sam2.1_hiera_tiny.pt"


def test_a_checkpoint_that_would_run_code_when_loaded_is_refused(tmp_path):
    from fractions import Fraction

    path = tmp_path / "odd.pt"
    torch.save({"model": {"w": torch.ones(1)}, "note": Fraction(1, 2)}, path)
    with pytest.raises(UserError) as info:
        load_state_dict(path)
    assert str(info.value).startswith("not a readable PyTorch checkpoint (UnpicklingError): ")


def test_an_unknown_model_is_one_line_listing_the_known_ones():
    from sam2flow.models import model_spec

    with pytest.raises(UserError) as info:
        model_spec("sam3")
    assert str(info.value) == "unknown model 'sam3': use one of: " + ", ".join(sorted(MODELS))
