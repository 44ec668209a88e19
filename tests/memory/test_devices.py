"""Which device a job runs on, and what it is called, on a machine without CUDA or MPS
(the GPU side runs in tests/test_gpu.py)."""

from __future__ import annotations

import logging

import pytest
import torch

from sam2flow.errors import UserError
from sam2flow.memory.devices import (
    _mps_available,
    device_name,
    device_uuid,
    resolve_device,
    total_memory,
    with_index,
)

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available() or _mps_available(), reason="for a machine without CUDA or MPS"
)
CPU = torch.device("cpu")


@pytest.mark.parametrize("requested", ["auto", "AUTO", "", None, "default"])
def test_auto_falls_back_to_the_cpu_and_says_so(requested, caplog):
    with caplog.at_level(logging.WARNING):
        assert (resolve_device() if requested == "default" else resolve_device(requested)) == CPU
    assert [r.getMessage() for r in caplog.records if r.name == "sam2flow.memory.devices"] == [
        "no CUDA or MPS device found: running on the CPU (slow)"
    ]


@pytest.mark.parametrize("requested", ["cpu", "CPU"])
def test_the_cpu_asked_for_by_name(requested, caplog):
    assert resolve_device(requested) == CPU and caplog.text == ""


@pytest.mark.parametrize("requested", ["cuda", "cuda:1"])
def test_cuda_asked_for_where_there_is_none_is_an_error(requested):
    with pytest.raises(UserError) as info:
        resolve_device(requested)
    assert str(info.value) == (
        f"device {requested!r} requested but CUDA is not available: "
        "use device 'auto' or 'cpu' (or run where a GPU is)"
    )


def test_mps_asked_for_where_there_is_none_is_an_error():
    with pytest.raises(UserError, match=r"^device 'mps' requested but MPS is not available: use"):
        resolve_device("mps")


def test_an_unknown_device_lists_the_known_ones():
    with pytest.raises(UserError) as info:
        resolve_device("gpu0")
    assert str(info.value) == "unknown device 'gpu0': use auto, cpu, cuda, cuda:N or mps"


@pytest.mark.parametrize("requested", ["gpu0", "cuda", "mps"])
def test_a_device_error_names_no_file_and_gives_the_fix(requested):
    with pytest.raises(UserError) as info:
        resolve_device(requested)
    assert info.value.path is None and info.value.fix.startswith("use ")


def test_the_cpu_is_named_and_has_no_device_memory_or_uuid():
    assert with_index(CPU) == CPU
    assert device_name(CPU) == "cpu" and total_memory(CPU) is None and device_uuid(CPU) is None
    assert device_name(torch.device("mps")) == "Apple MPS"
    assert total_memory(torch.device("mps")) is None
