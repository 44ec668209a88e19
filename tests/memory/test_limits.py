"""Limits: threshold validation, the cap, expandable segments."""

import logging

import pytest
import torch

from sam2flow.memory import GuardConfig
from sam2flow.memory.limits import (
    allocator_env_var,
    apply_memory_cap,
    clean_up_if_needed,
    enable_expandable_segments,
    should_clean_up,
    validate_max_gpu_memory,
    validate_threshold,
)
from sam2flow.memory.monitoring import take_snapshot

from conftest import listed_in_troubleshooting


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


@pytest.mark.parametrize(
    "version, name",
    [
        ("2.5.1", "PYTORCH_CUDA_ALLOC_CONF"),
        ("2.10.0+cu128", "PYTORCH_CUDA_ALLOC_CONF"),
        ("2.11.0+cu130", "PYTORCH_ALLOC_CONF"),
        ("2.12.1", "PYTORCH_ALLOC_CONF"),
        ("3.0.0", "PYTORCH_ALLOC_CONF"),
    ],
)
def test_allocator_variable_follows_the_torch_version(monkeypatch, version, name):
    """torch 2.11 renamed PYTORCH_CUDA_ALLOC_CONF (the old name still works, with a warning)."""
    monkeypatch.setattr(torch, "__version__", version)
    assert allocator_env_var() == name


def test_cleanup_only_above_the_threshold():
    snap = take_snapshot(torch.device("cpu"), "now")
    assert should_clean_up(snap, snap.fraction) is True
    assert should_clean_up(snap, min(1.0, snap.fraction + 0.01)) is False
    assert should_clean_up(None, 0.5) is False


def test_a_job_given_too_little_host_memory_fails_at_once_naming_both():
    from sam2flow.memory.estimate import check_host_memory

    with pytest.raises(MemoryError) as info:
        check_host_memory(3000 * 2**20, mem_mb=1500, what="batch 0002")
    assert "batch 0002 needs about 3000 MiB" in str(info.value) and "mem_mb=1500" in str(info.value)
    listed_in_troubleshooting(str(info.value))
    check_host_memory(3000 * 2**20, mem_mb=4000)  # enough: no error
    check_host_memory(3000 * 2**20, mem_mb=None)  # not given (a workstation): no check


def test_cleanup_runs_on_the_device_only_past_the_threshold(monkeypatch):
    cleared = []
    monkeypatch.setattr("sam2flow.memory.devices.clear_device_cache", cleared.append)
    snap = take_snapshot(torch.device("cpu"), "now")
    device = torch.device("cpu")
    assert clean_up_if_needed(device, snap, min(1.0, snap.fraction + 0.01)) is False
    assert clean_up_if_needed(device, None, 0.01) is False and cleared == []
    assert clean_up_if_needed(device, snap, snap.fraction) is True and cleared == [device]


@pytest.mark.parametrize("name", ["PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF"])
def test_an_allocator_setting_of_the_user_under_either_name_wins(name):
    user = {name: "max_split_size_mb:128"}
    assert enable_expandable_segments(user) is False and user == {name: "max_split_size_mb:128"}


def test_expandable_segments_are_not_set_once_cuda_has_started(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="sam2flow.memory.limits")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    env = {}
    assert enable_expandable_segments(env) is False and env == {}
    assert [r.getMessage() for r in caplog.records if r.name == "sam2flow.memory.limits"] == [
        "CUDA already initialised: expandable segments not set"
    ]
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert enable_expandable_segments(env) is True and env  # available, not yet started
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert enable_expandable_segments({}) is True  # nothing to start: set it anyway


@pytest.mark.parametrize("gb, ok", [(0.5, True), (1, True), (0, False), (-1, False)])
def test_a_cap_under_one_gib_is_allowed_and_zero_is_not(gb, ok):
    if ok:
        assert validate_max_gpu_memory(gb) == gb
    else:
        with pytest.raises(ValueError, match=f"max_gpu_memory_gb must be > 0, got {gb!r}"):
            validate_max_gpu_memory(gb)
