"""Models: registry, checkpoint download (local HTTP server), verification and loading."""

import numpy as np
import pytest
import torch

from sam2flow.errors import UserError
from sam2flow.models import (
    MODELS,
    ModelOptions,
    build_model,
    config_signature,
    download,
    load_state_dict,
    model_spec,
    weights_signature,
)

from conftest import RangeHandler, listed_in_troubleshooting, stock_sam2


def test_registry_has_sam2_and_sam21_in_four_sizes():
    for gen in ("sam2", "sam2.1"):
        for size in ("tiny", "small", "base_plus", "large"):
            spec = MODELS[f"{gen}_hiera_{size}"]
            assert spec.url.endswith(f"{gen}_hiera_{size}.pt")
            assert spec.config.startswith(f"configs/{gen}/")


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(UserError, match="unknown model 'sam3'.*sam2.1_hiera_tiny"):
        model_spec("sam3")


def test_checkpoint_is_downloaded_verified_and_loaded(checkpoint_server, tmp_path):
    url, original, sha = checkpoint_server
    loaded = build_model(
        ModelOptions(
            weights="checkpoint",
            checkpoint="sam2.1_hiera_tiny",
            image_size=256,
            device="cpu",
            checkpoint_dir=str(tmp_path),
            checkpoint_url=f"{url}/sam2.1_hiera_tiny.pt",
            checkpoint_sha256=sha,
        )
    )
    dest = tmp_path / "sam2.1_hiera_tiny.pt"
    assert dest.read_bytes() == original.read_bytes()
    assert loaded.weights == str(dest)
    saved = torch.load(original, weights_only=True)["model"]
    key = next(iter(saved))
    assert torch.equal(loaded.predictor.state_dict()[key].cpu(), saved[key])


def test_a_loaded_checkpoint_gives_sam2s_own_masks_not_the_random_ones(
    checkpoint_server, tiny_model, synthetic_frames, tmp_path
):
    from sam2.build_sam import build_sam2_video_predictor

    _, original, _ = checkpoint_server
    ours = build_model(
        ModelOptions(weights="checkpoint", checkpoint=str(original), image_size=256, device="cpu")
    )
    theirs = build_sam2_video_predictor(
        MODELS["sam2.1_hiera_tiny"].config,
        str(original),  # sam2's own checkpoint loader
        device="cpu",
        hydra_overrides_extra=["++model.image_size=256"],
    )
    folder = tmp_path / "frames"
    folder.mkdir()
    for jpg in sorted(synthetic_frames.glob("*.jpg"))[:8]:
        (folder / jpg.name).symlink_to(jpg)
    click = np.array([[48, 60]], dtype=np.float32)
    loaded = stock_sam2(ours.predictor, folder, 0, points=click)
    assert np.array_equal(loaded, stock_sam2(theirs, folder, 0, points=click))
    assert not np.array_equal(loaded, stock_sam2(tiny_model.predictor, folder, 0, points=click))


def test_partial_download_resumes(checkpoint_server, tmp_path):
    url, original, sha = checkpoint_server
    dest = tmp_path / "ckpt.pt"
    data = original.read_bytes()
    (tmp_path / "ckpt.pt.part").write_bytes(data[:1000])
    RangeHandler.ranges.clear()
    download(f"{url}/sam2.1_hiera_tiny.pt", dest, sha)
    assert RangeHandler.ranges == ["bytes=1000-"]
    assert dest.read_bytes() == data and not (tmp_path / "ckpt.pt.part").exists()


def test_wrong_sha256_is_a_one_line_error(checkpoint_server, tmp_path):
    url, _, _ = checkpoint_server
    with pytest.raises(UserError) as info:
        download(f"{url}/sam2.1_hiera_tiny.pt", tmp_path / "c.pt", "0" * 64)
    message = str(info.value)
    assert "sha256 mismatch" in message and "\n" not in message
    listed_in_troubleshooting(message)
    assert "by hand" in message
    assert not (tmp_path / "c.pt").exists()


def test_unreachable_url_names_it_and_where_to_put_the_file(tmp_path):
    url = "http://127.0.0.1:9/sam2.1_hiera_tiny.pt"  # port 9 (discard): nothing listens
    with pytest.raises(UserError) as info:
        download(url, tmp_path / "c.pt", timeout=5)
    message = str(info.value)
    assert url in message and str(tmp_path / "c.pt") in message and "\n" not in message


def test_a_file_that_is_not_a_checkpoint_is_named(checkpoint_server, tmp_path):
    url, _, _ = checkpoint_server
    path = download(f"{url}/not_a_checkpoint.pt", tmp_path / "x.pt")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint") as info:
        load_state_dict(path)
    assert "x.pt" in str(info.value)


def test_random_weights_say_so_loudly(tiny_model, caplog):
    """The session's model was built before this test could listen: one more is built,
    past ``build_model``'s cache (which held it whenever no two other models had pushed it
    out: the test passed in the whole suite and failed alone)."""
    import logging

    from sam2flow.models import RANDOM_WEIGHTS_WARNING, build_model

    assert tiny_model.weights == "random"
    assert tiny_model.image_size == 256
    assert tiny_model.dtype is None  # fp32 on the CPU
    caplog.set_level(logging.WARNING, logger="sam2flow.models")
    build_model.cache_clear()
    build_model(ModelOptions(weights="random", image_size=256, device="cpu"))
    assert [r.getMessage() for r in caplog.records if r.name == "sam2flow.models"] == [
        RANDOM_WEIGHTS_WARNING
    ]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_model):
    """sam2.1_hiera_tiny's weights in a checkpoint file, as a user would name it by path."""
    path = tmp_path_factory.mktemp("fit") / "tiny.pt"
    torch.save({"model": tiny_model.predictor.state_dict()}, path)
    return path


def built_with(checkpoint, name: str):
    options = ModelOptions(name=name, checkpoint=str(checkpoint), image_size=256, device="cpu")
    return build_model(options)


@pytest.mark.parametrize(
    "name, counts",
    [
        # only the number of blocks tells small from tiny, only the width base_plus, and
        # only SAM 2.1's three keys SAM 2's tiny
        ("sam2.1_hiera_small", "50 missing, 2 unexpected, 22 other-shaped"),
        ("sam2.1_hiera_base_plus", "150 missing, 6 unexpected, 152 other-shaped"),
        ("sam2_hiera_tiny", "0 missing, 3 unexpected, 0 other-shaped"),
    ],
)
def test_another_models_checkpoint_names_the_model_it_is(tiny_checkpoint, name, counts):
    with pytest.raises(UserError) as info:
        built_with(tiny_checkpoint, name)
    assert str(info.value) == (
        f"checkpoint does not fit model {name} ({counts} keys); it is sam2.1_hiera_tiny's: "
        f"{tiny_checkpoint}: set the model name (model.name, --model) to sam2.1_hiera_tiny, "
        f"or give {name}'s checkpoint"
    )
    listed_in_troubleshooting(str(info.value))


def test_a_checkpoint_that_is_no_registry_models_is_named_without_a_guess(
    tiny_checkpoint, tmp_path, tiny_model
):
    state = load_state_dict(tiny_checkpoint)
    del state["no_obj_ptr"]
    torch.save({"model": state}, tmp_path / "cut.pt")
    with pytest.raises(UserError) as info:
        built_with(tmp_path / "cut.pt", "sam2.1_hiera_tiny")  # still tiny's signature
    assert str(info.value) == (
        "checkpoint does not fit model sam2.1_hiera_tiny (1 missing, 0 unexpected, "
        f"0 other-shaped keys): {tmp_path / 'cut.pt'}: give sam2.1_hiera_tiny's checkpoint "
        "as SAM 2 publishes it, or the model it was made for"
    )
    assert built_with(tiny_checkpoint, "sam2.1_hiera_tiny").weights == str(tiny_checkpoint)


def test_each_registry_model_is_told_apart_by_its_weights():
    signatures = {name: config_signature(name) for name in MODELS}
    assert len(set(signatures.values())) == len(MODELS)
    for name in ("sam2.1_hiera_small", "sam2_hiera_base_plus", "sam2_hiera_large"):
        built = build_model(ModelOptions(name=name, weights="random", image_size=64, device="cpu"))
        assert weights_signature(built.predictor.state_dict()) == signatures[name], name
