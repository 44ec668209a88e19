"""What ``devices`` and the memory cap ask torch on a machine with CUDA or MPS, run on one
without: torch's answers are stood in, and the calls it receives are recorded. The real
devices are checked in tests/test_gpu.py; this checks the dispatch and the arithmetic, which
a CPU run otherwise never reaches."""

from __future__ import annotations

import gc
import logging
import types

import pytest
import torch

from sam2flow.memory import devices, limits

CUDA, CUDA1, MPS, CPU = (torch.device(d) for d in ("cuda", "cuda:1", "mps", "cpu"))
GIB = 1024**3


class Calls(list):
    """The calls made, in order; ``props`` is what get_device_properties answers."""

    props: types.SimpleNamespace


@pytest.fixture
def calls(monkeypatch):
    """Record every torch call ``devices`` makes; CUDA and MPS are off until a test says."""
    seen = Calls()

    def stand_in(name, value=None):
        def call(*args, **kwargs):
            seen.append((name, *args))
            return value

        return call

    props = types.SimpleNamespace(total_memory=16 * 2**30, uuid="1a2b-3c")
    for name, value in {
        "is_available": False,
        "is_initialized": True,
        "current_device": 3,
        "get_device_properties": props,
        "get_device_name": "NVIDIA Test GPU",
        "empty_cache": None,
        "synchronize": None,
        "reset_peak_memory_stats": None,
    }.items():
        monkeypatch.setattr(torch.cuda, name, stand_in(f"cuda.{name}", value))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for name, value in {
        "empty_cache": None,
        "synchronize": None,
        "recommended_max_memory": 12.0 * 2**30,
    }.items():
        monkeypatch.setattr(torch.mps, name, stand_in(f"mps.{name}", value))
    monkeypatch.setattr(gc, "collect", stand_in("gc.collect", 0))
    seen.props = props
    return seen


def with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def with_mps(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)


def test_auto_prefers_cuda_and_names_the_current_device(calls, monkeypatch, caplog):
    with_cuda(monkeypatch)
    with_mps(monkeypatch)
    assert devices.resolve_device("auto") == torch.device("cuda", 3)
    assert caplog.text == ""


def test_cuda_without_an_index_gets_the_current_one_and_an_index_is_kept(calls, monkeypatch):
    with_cuda(monkeypatch)
    assert devices.resolve_device("cuda") == torch.device("cuda", 3)
    assert devices.resolve_device("CUDA:1") == CUDA1
    assert devices.with_index(CUDA1) == CUDA1 and devices.with_index(MPS) == MPS


def test_auto_takes_mps_where_there_is_no_cuda(calls, monkeypatch, caplog):
    with_mps(monkeypatch)
    assert devices.resolve_device("auto") == MPS and devices.resolve_device("mps") == MPS
    assert caplog.text == ""


def test_clearing_collects_garbage_then_empties_the_device_cache(calls, monkeypatch):
    with_mps(monkeypatch)
    devices.clear_device_cache(CUDA1)
    devices.clear_device_cache(MPS)
    devices.clear_device_cache(CPU)
    assert calls == [
        ("gc.collect",),
        ("cuda.is_initialized",),
        ("cuda.empty_cache",),
        ("gc.collect",),
        ("mps.empty_cache",),
        ("gc.collect",),
    ]


def test_clearing_without_garbage_collection_or_an_initialised_cuda(calls, monkeypatch):
    devices.clear_device_cache(CUDA1, garbage_collection=False)
    assert calls == [("cuda.is_initialized",), ("cuda.empty_cache",)]
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    calls.clear()
    devices.clear_device_cache(CUDA1, garbage_collection=False)
    devices.clear_device_cache(MPS, garbage_collection=False)  # MPS is not there
    assert calls == []


def test_synchronize_and_reset_peak_reach_the_right_device(calls, monkeypatch):
    with_mps(monkeypatch)
    devices.synchronize(CUDA1)
    devices.reset_peak(CUDA1)
    devices.synchronize(MPS)
    devices.reset_peak(MPS)
    devices.synchronize(CPU)
    devices.reset_peak(CPU)
    assert [c for c in calls if c[0] != "cuda.is_initialized"] == [
        ("cuda.synchronize", CUDA1),
        ("cuda.reset_peak_memory_stats", CUDA1),
        ("mps.synchronize",),
    ]


def test_nothing_is_synchronised_on_a_cuda_that_was_never_initialised(calls, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    with_mps(monkeypatch)
    devices.synchronize(CUDA1)
    devices.reset_peak(CUDA1)
    assert calls == []


def test_name_and_memory_of_a_cuda_and_an_mps_device(calls, monkeypatch):
    assert devices.device_name(CUDA1) == "NVIDIA Test GPU"
    assert devices.total_memory(CUDA1) == 16 * 2**30
    assert ("cuda.get_device_name", CUDA1) in calls
    assert ("cuda.get_device_properties", CUDA1) in calls
    with_mps(monkeypatch)
    memory = devices.total_memory(MPS)
    assert memory == 12 * 2**30 and type(memory) is int


@pytest.mark.parametrize(
    "uuid, expected", [("1a2b-3c", "GPU-1a2b-3c"), ("GPU-1a2b-3c", "GPU-1a2b-3c"), (None, None)]
)
def test_the_uuid_is_spelt_the_way_nvml_spells_it(calls, uuid, expected):
    calls.props.uuid = uuid
    assert devices.device_uuid(CUDA1) == expected
    assert calls == [("cuda.get_device_properties", CUDA1)]


def test_a_torch_without_a_uuid_field_gives_none(calls, monkeypatch):
    bare = types.SimpleNamespace(total_memory=1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: bare)
    assert devices.device_uuid(CUDA1) is None


@pytest.fixture
def cuda_memory(calls, monkeypatch):
    """A 16 GiB GPU with 10 GiB free, 4 GiB of it reserved by torch: 2 GiB held outside."""
    with_cuda(monkeypatch)
    state = {"free": 10 * GIB, "reserved": 4 * GIB}

    def record(name, value):
        def call(*args):
            calls.append((name, *args))
            return value() if callable(value) else value

        return call

    monkeypatch.setattr(torch.cuda, "init", record("cuda.init", None))
    monkeypatch.setattr(
        torch.cuda, "mem_get_info", record("cuda.mem_get_info", lambda: (state["free"], 16 * GIB))
    )
    monkeypatch.setattr(
        torch.cuda, "memory_reserved", record("cuda.memory_reserved", lambda: state["reserved"])
    )
    monkeypatch.setattr(
        torch.cuda,
        "set_per_process_memory_fraction",
        record("cuda.set_per_process_memory_fraction", None),
    )
    return state


def test_the_cap_leaves_room_for_memory_held_outside_torch(calls, cuda_memory, caplog):
    caplog.set_level(logging.INFO, logger="sam2flow.memory.limits")
    assert limits.apply_memory_cap(CUDA, 8.0) == 8 * GIB
    cuda3 = torch.device("cuda", 3)
    assert [c for c in calls if c[0] != "cuda.current_device"] == [
        ("cuda.init",),
        ("cuda.mem_get_info", cuda3),
        ("cuda.memory_reserved", cuda3),
        ("cuda.set_per_process_memory_fraction", 0.5, cuda3),
    ]
    assert [r.getMessage() for r in caplog.records if r.name == "sam2flow.memory.limits"] == [
        "GPU memory cap: 8.00 GiB for torch (2.00 GiB held outside torch, 16.00 GiB total)"
    ]
    calls.clear()
    assert limits.apply_memory_cap(CUDA1, 15.0) == 14 * GIB
    assert calls[-1] == ("cuda.set_per_process_memory_fraction", 14 / 16, CUDA1)


def test_torch_reserving_more_than_the_driver_counts_holds_nothing_outside(calls, cuda_memory):
    cuda_memory["reserved"] = 8 * GIB  # the driver's used (6 GiB) lags torch's books
    assert limits.apply_memory_cap(CUDA1, 20.0) == 16 * GIB
    assert calls[-1] == ("cuda.set_per_process_memory_fraction", 1.0, CUDA1)


def test_no_cap_without_a_limit_or_off_cuda(calls, cuda_memory):
    assert limits.apply_memory_cap(CUDA1, None) is None
    assert limits.apply_memory_cap(CPU, 8.0) is None
    assert limits.apply_memory_cap(MPS, 8.0) is None
    assert calls == []
