"""NVML through ``nvidia-ml-py``: which GPU is asked and which answer is kept, with a
stand-in ``pynvml`` module (this machine has no NVIDIA driver; tests/test_gpu.py asks a
real one)."""

from __future__ import annotations

import logging
import sys
import types

import pytest

from sam2flow.memory import nvml
from sam2flow.memory.nvml import NvmlMemory


class NVMLError(Exception):
    pass


def fake_pynvml(*, uuids=("GPU-b",), v2=True, reserved=True, fail_init=False, fail_query=False):
    """A ``pynvml`` with GPUs at indexes 0.. named ``uuids``; records the handles asked for."""
    m = types.ModuleType("pynvml")
    m.asked = []
    m.nvmlMemory_v2 = object()

    def init():
        if fail_init:
            raise NVMLError("Driver Not Loaded")

    def by_uuid(uuid):
        m.asked.append(("uuid", uuid))
        if uuid not in uuids:
            raise NVMLError("Not Found")
        return uuids.index(uuid)

    def by_index(index):
        m.asked.append(("index", index))
        return index

    def memory_info(handle, version=None):
        m.asked.append(("memory", handle, "v2" if version is m.nvmlMemory_v2 else "v1"))
        if fail_query:
            raise NVMLError("GPU is lost")
        if version is not None and not v2:
            raise NVMLError("Function Not Found")
        info = types.SimpleNamespace(total=8000 + handle, used=3000.0, free=5000)
        if version is not None and reserved:
            info.reserved = 300
        return info

    m.nvmlInit = init
    m.nvmlDeviceGetHandleByUUID = by_uuid
    m.nvmlDeviceGetHandleByIndex = by_index
    m.nvmlDeviceGetMemoryInfo = memory_info
    return m


def logged(caplog) -> list[str]:
    """The messages this module logged (another test may leave other loggers talking)."""
    return [r.getMessage() for r in caplog.records if r.name == "sam2flow.memory.nvml"]


@pytest.fixture
def use(monkeypatch):
    def install(module):
        monkeypatch.setitem(sys.modules, "pynvml", module)
        nvml._nvml.cache_clear()
        return module

    yield install
    nvml._nvml.cache_clear()


def test_the_gpu_is_found_by_its_uuid_and_v2_gives_reserved(use):
    pynvml = use(fake_pynvml(uuids=("GPU-a", "GPU-b")))
    assert nvml.nvml_available() is True
    memory = nvml.nvml_memory("GPU-b", index=0)
    assert memory == NvmlMemory(total=8001, used=3000, free=5000, reserved=300)
    assert type(memory.used) is int
    assert pynvml.asked == [("uuid", "GPU-b"), ("memory", 1, "v2")]


def test_an_unknown_uuid_falls_back_to_the_index(use, caplog):
    caplog.set_level(logging.DEBUG, logger="sam2flow.memory.nvml")
    pynvml = use(fake_pynvml())
    assert nvml.nvml_memory("GPU-zz", index=2).total == 8002
    assert logged(caplog) == ["NVML has no device with UUID GPU-zz; using index 2"]
    assert pynvml.asked == [("uuid", "GPU-zz"), ("index", 2), ("memory", 2, "v2")]


def test_without_a_uuid_the_index_is_asked_and_it_defaults_to_the_first_gpu(use):
    pynvml = use(fake_pynvml())
    assert nvml.nvml_memory(None, index=1).total == 8001
    assert nvml.nvml_memory().total == 8000
    assert pynvml.asked == [("index", 1), ("memory", 1, "v2"), ("index", 0), ("memory", 0, "v2")]


def test_a_v2_answer_without_a_reserved_field_reserves_nothing(use):
    pynvml = use(fake_pynvml(reserved=False))
    assert nvml.nvml_memory("GPU-b") == NvmlMemory(8000, 3000, 5000, 0)
    assert pynvml.asked[-1] == ("memory", 0, "v2")  # kept, not asked again as v1


def test_a_driver_without_v2_answers_v1_with_nothing_reserved(use):
    pynvml = use(fake_pynvml(v2=False))
    assert nvml.nvml_memory("GPU-b") == NvmlMemory(8000, 3000, 5000, 0)
    assert pynvml.asked[-2:] == [("memory", 0, "v2"), ("memory", 0, "v1")]


def test_a_failed_query_is_none_not_an_error(use, caplog):
    caplog.set_level(logging.DEBUG, logger="sam2flow.memory.nvml")
    use(fake_pynvml(fail_query=True))
    assert nvml.nvml_available() is True and nvml.nvml_memory("GPU-b") is None
    assert logged(caplog) == ["NVML query failed: GPU is lost"]


def test_a_driver_that_does_not_start_is_unavailable_and_initialised_once(use):
    pynvml = use(fake_pynvml(fail_init=True))
    assert nvml.nvml_available() is False and nvml.nvml_memory("GPU-b") is None
    assert pynvml.asked == []
    use(fake_pynvml())
    assert nvml.nvml_available() is True
    sys.modules["pynvml"] = None  # a later import would fail: the first answer is kept
    assert nvml.nvml_available() is True


def test_no_package_is_unavailable(use):
    use(None)
    assert nvml.nvml_available() is False and nvml.nvml_memory() is None
