"""Settings: which configured options can change a batch's masks.

A finished batch reruns when one of its job's parameters changes; only the options that
can change its masks are parameters, so that switching monitoring on or off does not
redo a video.
"""

from __future__ import annotations

#: Options of config ``memory:`` that never change a mask: what is watched and recorded, and
#: what happens after a batch. A change to them must not rerun finished batches.
RECORD_ONLY = frozenset(
    {"monitoring", "memory_threshold", "sizing_file", "sizing_grow_after", "fail_on_skip"}
)


def mask_settings(options: dict) -> dict:
    """The options of config ``memory:`` that can change masks (how batches are chunked).

    >>> mask_settings({"min_chunk": 25, "monitoring": False})
    {'min_chunk': 25}
    """
    return {k: v for k, v in options.items() if k not in RECORD_ONLY}
