"""OOM classification: is this exception an out-of-memory we may recover from?

Also the one test hook of production code, ``SAM2FLOW_INJECT_OOM``: with ``above=N`` any
attempt over more than N frames raises a real ``torch.OutOfMemoryError`` before the model
is touched; with ``frames=A-B`` (or ``A-B,C-D``) the model runs out when it reaches one of
those video frames (the frames before it are finished), or, for work that cannot say how
far it got, any attempt that includes one of them fails before it starts. It is a testing
aid for what CI cannot do for real (a GPU running out).
"""

from __future__ import annotations

import os
import re

import torch

INJECT_ENV = "SAM2FLOW_INJECT_OOM"

# Texts of device out-of-memory errors that are not always raised as torch.OutOfMemoryError:
# the CUDA caching allocator (old and new wording), the CUDA runtime and driver, cuBLAS,
# cuDNN, ROCm and MPS. Matched on the exception's own message only.
_DEVICE_OOM = re.compile(
    "|".join(
        [
            r"\b(CUDA|HIP|XPU) out of memory",
            r"CUDA (driver )?error:\s*out of memory",
            r"cudaErrorMemoryAllocation",
            r"CUBLAS_STATUS_ALLOC_FAILED",
            r"CUDNN_STATUS_ALLOC_FAILED",
            # cuBLAS cannot create its handle, cuDNN finds no algorithm whose workspace
            # fits: both what a full GPU raises at the first matmul or convolution.
            r"CUBLAS_STATUS_NOT_INITIALIZED",
            r"CUDNN_STATUS_NOT_SUPPORTED",
            r"Triton Error \[CUDA\]: out of memory",
            r"MPS backend out of memory",
        ]
    ),
    re.IGNORECASE,
)
# Host (CPU) allocation failures: torch's CPU allocator on Linux and Windows, C++ new.
_HOST_OOM = re.compile(
    r"DefaultCPUAllocator: (can't allocate memory|not enough memory)|std::bad_alloc",
    re.IGNORECASE,
)


class HostOutOfMemory(MemoryError):
    """Host memory ran out while the model runs on an accelerator: the job needs more
    ``mem_mb``, which smaller chunks on the GPU cannot give it."""


def oom_kind(exc: BaseException) -> str | None:
    """``"device"``, ``"host"`` or ``None``, from the exception itself.

    An error raised while an out-of-memory was being handled is that error, not an OOM:
    its ``__cause__`` and ``__context__`` are not looked at.

    >>> oom_kind(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    'device'
    >>> oom_kind(MemoryError()), oom_kind(RuntimeError("CUDA error: misaligned address"))
    ('host', None)
    """
    text = str(exc)
    if isinstance(exc, MemoryError) or _HOST_OOM.search(text):
        return "host"
    if isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and _DEVICE_OOM.search(text)
    ):
        return "device"
    return None


def is_oom_error(exc: BaseException | None, device: torch.device | None = None) -> bool:
    """True for an out-of-memory of ``device`` that smaller chunks may avoid.

    On the CPU, host memory is the device's memory; on an accelerator, a host
    out-of-memory is not (see ``HostOutOfMemory``).

    >>> is_oom_error(torch.OutOfMemoryError("CUDA out of memory"))
    True
    >>> is_oom_error(RuntimeError("CUDA error: an illegal memory access was encountered"))
    False
    >>> is_oom_error(MemoryError(), torch.device("cuda")), is_oom_error(MemoryError())
    (False, True)
    """
    kind = None if exc is None else oom_kind(exc)
    if kind == "host":
        return device is None or device.type == "cpu"
    return kind == "device"


_SIZE = r"([\d.]+) (bytes|KiB|MiB|GiB|TiB)"
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def _bytes(match: re.Match | None) -> float | None:
    return None if match is None else float(match.group(1)) * _UNITS[match.group(2)]


def memory_was_there(text: str) -> bool:
    """Whether PyTorch's own OOM figures say the request would have fitted in memory its
    cache reserved but did not use (fragmentation): then emptying the cache and trying
    the same again can work, and a lower level is not needed yet.

    >>> memory_was_there("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
    ...     "capacity of 79.19 GiB of which 1.00 GiB is free. Of the allocated memory 70.00 "
    ...     "GiB is allocated by PyTorch, and 3.50 GiB is reserved by PyTorch but unallocated.")
    True
    >>> memory_was_there("CUDA out of memory. Tried to allocate 2.00 GiB. ... and 20.00 MiB "
    ...     "is reserved by PyTorch but unallocated."), memory_was_there("CUDA out of memory")
    (False, False)
    """
    asked = _bytes(re.search(r"Tried to allocate " + _SIZE, text))
    spare = _bytes(re.search(_SIZE + r" is reserved by PyTorch but unallocated", text))
    return asked is not None and spare is not None and spare >= asked


def injected_oom(environ: dict | None = None) -> tuple[int | None, list[tuple[int, int]]]:
    """The hook's setting: ``(N of above=N or None, [(A, B) of frames=A-B])``.

    >>> injected_oom({INJECT_ENV: "above=60"}), injected_oom({INJECT_ENV: "frames=5-9,20-20"})
    ((60, []), (None, [(5, 9), (20, 20)]))
    """
    value = (os.environ if environ is None else environ).get(INJECT_ENV, "").strip()
    if not value:
        return None, []
    above = re.fullmatch(r"above=(\d+)", value)
    if above:
        return int(above.group(1)), []
    frames = re.fullmatch(r"frames=(\d+-\d+(?:,\d+-\d+)*)", value)
    if not frames:
        raise ValueError(f"{INJECT_ENV} must look like 'above=N' or 'frames=A-B', got {value!r}")
    ranges = [tuple(map(int, r.split("-"))) for r in frames.group(1).split(",")]
    return None, ranges


def maybe_inject_oom(frames: list[int], at_frames: bool = True) -> None:
    """Raise a real ``torch.OutOfMemoryError`` if the hook says this attempt over the video
    frames ``frames`` runs out: ``above=N`` always, ``frames=A-B`` only if ``at_frames``
    (work that injects those itself, frame by frame, passes ``False``)."""
    limit, ranges = injected_oom()
    hit = [f for f in frames if any(a <= f <= b for a, b in ranges)] if at_frames else []
    if (limit is not None and len(frames) > limit) or hit:
        why = f"over {len(frames)} frames" if not hit else f"including frame {hit[0]}"
        _raise_injected(f"attempt {why}")


def maybe_inject_oom_at(frame: int) -> None:
    """Raise a real ``torch.OutOfMemoryError`` if the hook's ``frames=A-B`` includes
    ``frame``: for work that reaches frames one at a time."""
    _, ranges = injected_oom()
    if any(a <= frame <= b for a, b in ranges):
        _raise_injected(f"at frame {frame}")


def _raise_injected(why: str) -> None:
    raise torch.OutOfMemoryError(
        f"CUDA out of memory (injected by {INJECT_ENV}={os.environ[INJECT_ENV].strip()}: {why})"
    )
