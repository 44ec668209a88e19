"""What a video file holds, found before hours of work are queued on it (``sam2flow init``).

Reads the container and its packets, decodes one frame: seconds for an hour of video,
where decoding it all would take minutes. Each finding is a warning, not an error: the
sheet is still written, and the user decides.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from .decoding import open_video
from .errors import UserError
from .ranges import keyframes


def probe_video(path: str | Path) -> list[str]:
    """Warnings about ``path``: missing, empty, a still image, not a video, no frame that
    decodes, or fewer frames in the file than its container declares (a copy cut short)."""
    path = Path(path)
    try:
        cap = open_video(path)
    except UserError as exc:
        return [str(exc)]
    try:
        decodes, _ = cap.read()
        declared = int(max(cap.get(cv2.CAP_PROP_FRAME_COUNT), 0))
    finally:
        cap.release()
    if not decodes:
        return [f"no frame decodes: {path}: check the file plays, or re-encode it"]
    found = keyframes(path)
    if found is not None and declared and found[1] < declared:
        return [
            f"{found[1]} of the {declared} frames its container declares are in the file "
            f"(a copy cut short?): {path}: copy the video again, or segment what is there"
        ]
    return []
