"""OOM classification and the injection hook."""

import pytest
import torch

from sam2flow.memory.oom import injected_oom, is_oom_error, maybe_inject_oom, oom_kind

ASYNC = (
    "\nCUDA kernel errors might be asynchronously reported at some other API call, so the "
    "stacktrace below might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1"
)

#: Real texts (PyTorch's CUDA caching allocator old and new, CUDA runtime and driver, cuBLAS,
#: cuDNN, ROCm, MPS, the CPU allocator on Linux and Windows) and what they are.
ERROR_TEXTS = [
    (
        torch.OutOfMemoryError,
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 15.77 "
        "GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 14.70 "
        "GiB memory in use. Of the allocated memory 13.92 GiB is allocated by PyTorch, and "
        "412.34 MiB is reserved by PyTorch but unallocated. If reserved but unallocated memory "
        "is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid "
        "fragmentation.",
        "device",
    ),
    (
        RuntimeError,
        "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.78 GiB total capacity; "
        "14.56 GiB already allocated; 3.19 MiB free; 14.75 GiB reserved in total by PyTorch)",
        "device",
    ),
    (RuntimeError, "CUDA error: out of memory" + ASYNC, "device"),
    (RuntimeError, "CUDA error:out of memory", "device"),
    (RuntimeError, "CUDA driver error: out of memory", "device"),
    (
        RuntimeError,
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        "device",
    ),
    (RuntimeError, "cuDNN error: CUDNN_STATUS_ALLOC_FAILED", "device"),
    (
        RuntimeError,
        "CUDA error: CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate(handle)`",
        "device",
    ),
    (
        RuntimeError,
        "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a "
        "non-contiguous input.",
        "device",
    ),
    (RuntimeError, "Triton Error [CUDA]: out of memory", "device"),
    (
        RuntimeError,
        "HIP out of memory. Tried to allocate 2.00 GiB (GPU 0; 63.98 GiB total capacity; 62.10 "
        "GiB already allocated; 1.44 GiB free; 62.31 GiB reserved in total by PyTorch)",
        "device",
    ),
    (
        RuntimeError,
        "MPS backend out of memory (MPS allocated: 17.45 GB, other allocations: 1.22 GB, max "
        "allowed: 18.13 GB). Tried to allocate 256.00 MB on private pool. Use "
        "PYTORCH_MPS_HIGH_WATERMARK_RATIO=0.0 to disable upper limit for memory allocations "
        "(may cause system failure).",
        "device",
    ),
    (
        RuntimeError,
        "[enforce fail at alloc_cpu.cpp:83] err == 0. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 1073741824 bytes. Error code 12 (Cannot allocate memory)",
        "host",
    ),
    (
        RuntimeError,
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you "
        "tried to allocate 4294967296 bytes.",
        "host",
    ),
    (MemoryError, "", "host"),
    (
        MemoryError,
        "Unable to allocate 7.91 GiB for an array with shape (400, 1080, 1920, 3)",
        "host",
    ),
    (RuntimeError, "CUDA error: an illegal memory access was encountered" + ASYNC, None),
    (RuntimeError, "CUDA error: device-side assert triggered" + ASYNC, None),
    (RuntimeError, "CUDA error: misaligned address" + ASYNC, None),
    (
        RuntimeError,
        "CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm( handle, opa, opb, "
        "m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc)`",
        None,
    ),
    (RuntimeError, "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR", None),
    (
        RuntimeError,
        "Expected all tensors to be on the same device, but found at least two devices, cuda:0 "
        "and cpu!",
        None,
    ),
    (ValueError, "memory_threshold must be in (0, 1], got 2", None),
    (KeyError, "maskmem_features", None),
]


@pytest.mark.parametrize("kind, text, expected", ERROR_TEXTS)
def test_real_error_texts_are_classified(kind, text, expected):
    assert oom_kind(kind(text)) == expected


def test_the_table_covers_at_least_15_texts_of_both_kinds():
    outcomes = [e for _, _, e in ERROR_TEXTS]
    assert len(ERROR_TEXTS) >= 15 and {"device", "host", None} <= set(outcomes)


def test_an_error_raised_while_handling_an_oom_is_that_error():
    try:
        try:
            raise torch.OutOfMemoryError("CUDA out of memory")
        except torch.OutOfMemoryError:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")  # noqa: B904
    except RuntimeError as outer:
        assert not is_oom_error(outer)


def test_host_memory_is_the_devices_memory_only_on_the_cpu():
    host = MemoryError("Unable to allocate 7.91 GiB")
    assert is_oom_error(host, torch.device("cpu"))
    assert not is_oom_error(host, torch.device("cuda"))
    assert is_oom_error(torch.OutOfMemoryError("CUDA out of memory"), torch.device("cuda"))


def test_injection_hook_parses_and_rejects_garbage():
    assert injected_oom({}) == (None, [])
    assert injected_oom({"SAM2FLOW_INJECT_OOM": "above=30"}) == (30, [])
    assert injected_oom({"SAM2FLOW_INJECT_OOM": "frames=120-145"}) == (None, [(120, 145)])
    for garbage in ("30", "frames=120", "frames=1-2;3-4", "above=x"):
        with pytest.raises(ValueError, match="above=N"):
            injected_oom({"SAM2FLOW_INJECT_OOM": garbage})


def test_frame_targeted_injection_hits_only_attempts_over_those_frames(monkeypatch):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "frames=120-145")
    maybe_inject_oom(list(range(100, 120)))
    maybe_inject_oom(list(range(146, 400)))
    with pytest.raises(torch.OutOfMemoryError, match="including frame 145"):
        maybe_inject_oom([150, 149, 148, 147, 146, 145])


def test_injection_over_several_ranges_hits_each_ranges_first_and_last_frame(monkeypatch):
    hook = "frames=5-9,20-20"
    assert injected_oom({"SAM2FLOW_INJECT_OOM": hook}) == (None, [(5, 9), (20, 20)])
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", hook)
    maybe_inject_oom([4, 10, 19, 21])
    for frame in (5, 9, 20):
        with pytest.raises(torch.OutOfMemoryError, match=f"including frame {frame}\\)"):
            maybe_inject_oom([frame])


@pytest.mark.parametrize(
    "text, there",
    [
        (ERROR_TEXTS[0][1], False),  # 412 MiB spare, 2 GiB asked
        (ERROR_TEXTS[0][1].replace("412.34 MiB is reserved", "2.50 GiB is reserved"), True),
        (ERROR_TEXTS[0][1].replace("412.34 MiB is reserved", "2.00 GiB is reserved"), True),
        (ERROR_TEXTS[1][1], False),  # the old wording has no spare figure
        ("CUDA out of memory", False),
    ],
)
def test_the_memory_was_there_only_where_the_errors_figures_say_so(text, there):
    from sam2flow.memory.oom import memory_was_there

    assert memory_was_there(text) is there


def test_frames_injected_at_a_frame_raise_only_there_and_not_per_attempt(monkeypatch):
    from sam2flow.memory.oom import maybe_inject_oom_at

    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "frames=45-47")
    maybe_inject_oom(list(range(40, 60)), at_frames=False)  # left to the work
    maybe_inject_oom_at(44)
    with pytest.raises(torch.OutOfMemoryError, match=r"at frame 46\)"):
        maybe_inject_oom_at(46)


def test_frames_injected_at_a_frame_include_the_ranges_first_and_last(monkeypatch):
    from sam2flow.memory.oom import maybe_inject_oom_at

    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "frames=45-47,60-60")
    for frame in (45, 47, 60):
        with pytest.raises(torch.OutOfMemoryError, match=rf"at frame {frame}\)"):
            maybe_inject_oom_at(frame)
    for frame in (44, 48, 59, 61):
        maybe_inject_oom_at(frame)
