"""Limits: threshold validation, the cap, expandable segments."""

import pytest
import torch

from sam2flow.memory import GuardConfig
from sam2flow.memory.limits import (
    allocator_env_var,
    apply_memory_cap,
    enable_expandable_segments,
    should_clean_up,
    validate_threshold,
)
from sam2flow.memory.monitoring import take_snapshot


@pytest.mark.parametrize("value", [0.01, 0.5, 0.85, 1.0])
def test_threshold_in_range_is_accepted(value):
    assert validate_threshold(value) == value


@pytest.mark.parametrize("value", [0, -0.1, 1.01, 85, "high"])
def test_threshold_out_of_range_names_the_value(value):
    with pytest.raises(ValueError, match=repr(value).replace("(", r"\(").replace(".", r"\.")):
        validate_threshold(value)


def test_guard_config_rejects_bad_values():
    with pytest.raises(ValueError, match="memory_threshold"):
        GuardConfig(memory_threshold=1.5)
    with pytest.raises(ValueError, match="max_gpu_memory_gb"):
        GuardConfig(max_gpu_memory_gb=-2)
    with pytest.raises(ValueError, match="min_chunk"):
        GuardConfig(min_chunk=0)


def test_cap_is_a_no_op_on_the_cpu():
    assert apply_memory_cap(torch.device("cpu"), 4) is None


def test_expandable_segments_set_without_overriding_the_user():
    env = {}
    assert enable_expandable_segments(env) is (not torch.cuda.is_initialized())
    assert env.get(allocator_env_var()) == "expandable_segments:True"
    user = {"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:128"}
    assert enable_expandable_segments(user) is False
    assert user == {"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:128"}


def test_allocator_variable_follows_the_torch_version():
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    expected = "PYTORCH_ALLOC_CONF" if (major, minor) >= (2, 11) else "PYTORCH_CUDA_ALLOC_CONF"
    assert allocator_env_var() == expected


def test_cleanup_only_above_the_threshold():
    snap = take_snapshot(torch.device("cpu"), "now")
    assert should_clean_up(snap, snap.fraction) is True
    assert should_clean_up(snap, min(1.0, snap.fraction + 0.01)) is False
    assert should_clean_up(None, 0.5) is False
