"""Resources: what a job asks its executor for, from the config's ``resources:``.

Every value grows with the attempt, so that a retry after running out of memory or time
asks for more. Work that grows with the video (merging, the overlay) also grows with its
frame count: one fixed runtime that fits a demo times out on an hour of video.
"""

from __future__ import annotations

import math


def per_video_runtime(
    minutes: int, minutes_per_10k_frames: float, frames: int, attempt: int = 1
) -> int:
    """Minutes for a job over a whole video: a fixed part plus a part per frame, times the
    attempt.

    >>> per_video_runtime(30, 15, 108_000)  # one hour at 30 fps
    192
    >>> per_video_runtime(30, 15, 120, attempt=2)
    62
    """
    return (minutes + math.ceil(minutes_per_10k_frames * frames / 10_000)) * attempt
