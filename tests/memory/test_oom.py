"""OOM classification and the injection hook."""

import pytest
import torch

from sam2flow.memory.oom import injected_limit, is_oom_error


@pytest.mark.parametrize(
    "exc",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"),
        RuntimeError("HIP out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory"
        ),
        RuntimeError("MPS backend out of memory (MPS allocated: 1.00 GB)"),
        MemoryError(),
    ],
)
def test_out_of_memory_errors_are_recognised(exc):
    assert is_oom_error(exc)


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("CUDA error: an illegal memory access was encountered"),
        ValueError("out of range"),
        KeyError("maskmem_features"),
    ],
)
def test_other_errors_are_not_oom(exc):
    assert not is_oom_error(exc)


def test_oom_found_through_cause_and_context():
    try:
        try:
            raise torch.OutOfMemoryError("CUDA out of memory")
        except torch.OutOfMemoryError as inner:
            raise RuntimeError("propagation failed") from inner
    except RuntimeError as outer:
        assert is_oom_error(outer)
    try:
        try:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory")
        except RuntimeError:
            raise ValueError("while writing")  # noqa: B904 (implicit context on purpose)
    except ValueError as outer:
        assert is_oom_error(outer)


def test_injection_hook_parses_and_rejects_garbage():
    assert injected_limit({}) is None
    assert injected_limit({"SAM2FLOW_INJECT_OOM": "above=30"}) == 30
    with pytest.raises(ValueError, match="above=N"):
        injected_limit({"SAM2FLOW_INJECT_OOM": "30"})
