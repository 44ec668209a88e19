"""OOM classification: is this exception an out-of-memory we may recover from?

Also the one test hook of production code, ``SAM2FLOW_INJECT_OOM=above=N``: any attempt
over more than N frames raises a real ``torch.OutOfMemoryError`` before the model is
touched. It is a testing aid for what CI cannot do for real (a GPU running out).
"""

from __future__ import annotations

import os
import re

import torch

INJECT_ENV = "SAM2FLOW_INJECT_OOM"

# Errors that mean "out of memory" but are not raised as torch.OutOfMemoryError.
_OOM_PATTERNS = re.compile(
    "|".join(
        [
            r"CUDA out of memory",
            r"HIP out of memory",
            r"CUDA error: out of memory",
            r"CUBLAS_STATUS_ALLOC_FAILED",
            r"CUDNN_STATUS_ALLOC_FAILED",
            r"DefaultCPUAllocator: can't allocate memory",
            r"MPS backend out of memory",
        ]
    )
)


def is_oom_error(exc: BaseException | None) -> bool:
    """True for an out-of-memory error, looking through ``__cause__`` and ``__context__``.

    >>> is_oom_error(torch.OutOfMemoryError("CUDA out of memory"))
    True
    >>> is_oom_error(RuntimeError("CUDA error: an illegal memory access was encountered"))
    False
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, torch.OutOfMemoryError | MemoryError):
            return True
        if isinstance(exc, RuntimeError) and _OOM_PATTERNS.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def injected_limit(environ: dict | None = None) -> int | None:
    """The frame count above which an OOM is injected, or ``None`` when the hook is off."""
    value = (os.environ if environ is None else environ).get(INJECT_ENV, "").strip()
    if not value:
        return None
    match = re.fullmatch(r"above=(\d+)", value)
    if not match:
        raise ValueError(f"{INJECT_ENV} must look like 'above=N', got {value!r}")
    return int(match.group(1))


def maybe_inject_oom(frames: int) -> None:
    """Raise a real ``torch.OutOfMemoryError`` if the hook says ``frames`` is too many."""
    limit = injected_limit()
    if limit is not None and frames > limit:
        raise torch.OutOfMemoryError(
            f"CUDA out of memory (injected by {INJECT_ENV}=above={limit}: "
            f"attempt over {frames} frames)"
        )
