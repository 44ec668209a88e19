"""Overlay: the masks drawn over the video (``overlay.mp4``) and a contact sheet of frames.

For looking at, not for reading back: streamed from ``masks.h5`` and the video a frame at a
time, so that a long video costs no more memory than a short one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from . import maskfile
from .atomic import atomic_path
from .decoding import open_video
from .errors import UserError

log = logging.getLogger(__name__)


_COLOURS = [
    (0, 200, 255),
    (255, 80, 80),
    (80, 255, 80),
    (255, 0, 255),
    (255, 255, 0),
    (0, 128, 255),
]


def draw_masks(image: np.ndarray, masks: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend each object's mask over a BGR image in its own colour, with its outline.

    Only the mask's bounding box is blended (at 1080p, indexing the whole frame by the
    mask took 35 ms per frame, as long as encoding it)."""
    out = image.copy()
    for k, m in enumerate(masks):
        mask = m.view(np.uint8) if m.dtype == bool else m.astype(np.uint8)
        x, y, w, h = cv2.boundingRect(mask)
        if w == 0 or h == 0:
            continue
        colour = _COLOURS[k % len(_COLOURS)]
        roi = out[y : y + h, x : x + w]
        blend = cv2.addWeighted(roi, 1 - alpha, np.full_like(roi, colour), alpha, 0)
        np.copyto(roi, blend, where=mask[y : y + h, x : x + w, None].astype(bool))
        contours, _ = cv2.findContours(
            mask[y : y + h, x : x + w], cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x, y)
        )
        cv2.drawContours(out, contours, -1, colour, 2)
    return out


class H264Writer:
    """An MP4 of H.264 frames (yuv420p, what browsers and Snakemake's report play) through
    PyAV's bundled FFmpeg; odd frame sizes are padded by one pixel, as yuv420p needs."""

    def __init__(self, path: str | Path, fps: float, width: int, height: int) -> None:
        from fractions import Fraction

        import av

        self.container = av.open(str(path), "w", format="mp4")
        self.stream = self.container.add_stream(
            "libx264", rate=Fraction(fps).limit_denominator(1001)
        )
        self.stream.width, self.stream.height = width + width % 2, height + height % 2
        self.stream.pix_fmt = "yuv420p"
        # ultrafast: 2.2x veryfast's speed at 1080p (15 against 34 ms a frame), files
        # about twice as large; the overlay is for looking, and its time grows with the video
        self.stream.options = {"crf": "23", "preset": "ultrafast"}
        self.pad = (height % 2, width % 2)

    def write(self, bgr: np.ndarray) -> None:
        import av

        if any(self.pad):
            bgr = cv2.copyMakeBorder(bgr, 0, self.pad[0], 0, self.pad[1], cv2.BORDER_REPLICATE)
        # OpenCV's BT.601 conversion: 1.5 ms at 1080p, against 10.7 in PyAV's swscale
        yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                for packet in self.stream.encode():  # flush the encoder
                    self.container.mux(packet)
        finally:
            self.container.close()


def read_ahead(cap: cv2.VideoCapture, depth: int = 4) -> Iterator[np.ndarray]:
    """The frames of ``cap``, decoded in a thread while the caller draws and encodes the
    frame before (OpenCV lets go of the GIL while it decodes); ``depth`` frames at most
    wait."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def decode() -> None:
        try:
            ok = True
            while ok and not stop.is_set():
                ok, img = cap.read()
                q.put(img if ok else None)
        except BaseException as exc:  # handed to the caller's thread
            q.put(exc)

    thread = threading.Thread(target=decode, name="overlay-decoder", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a decoder waiting to put a frame
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.1)
        thread.join()


def _scaled_to_masks(img: np.ndarray, h: int, w: int, video, warn: bool) -> np.ndarray:
    """A frame of another size than the masks, scaled to them: allowed (with a warning)
    for the same picture at another resolution, refused for another shape of picture,
    which is another video."""
    vh, vw = img.shape[:2]
    if abs((vw / vh) / (w / h) - 1) > 0.02:
        raise UserError(
            f"the video is {vw}x{vh} but the masks are {w}x{h}",
            video,
            "give the video these masks were made from",
        )
    if warn:
        log.warning("%s: the video is %dx%d, the masks %dx%d: scaled", video, vw, vh, w, h)
    return cv2.resize(img, (w, h))


def render_overlay(
    video: str | Path,
    masks_h5: str | Path,
    overlay: str | Path,
    sheet: str | Path,
    tiles: int = 12,
) -> None:
    """Draw the masks over the video (``overlay``) and a grid of frames (``sheet``)."""
    frames, ids, h, w = maskfile.describe(masks_h5)  # masks are streamed below
    n, k = len(frames), len(ids)
    picks = set(np.linspace(frames[0], frames[-1], num=min(tiles, n)).round().astype(int).tolist())
    masks = maskfile.iter_packed(masks_h5)
    next_mask = next(masks, None)
    cap = open_video(video)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    tiles_img = []
    last = -1
    reader = read_ahead(cap)
    try:
        with atomic_path(overlay) as tmp, H264Writer(tmp, fps, w, h) as writer:
            for frame, img in enumerate(reader):
                last = frame
                if img.shape[:2] != (h, w):
                    img = _scaled_to_masks(img, h, w, video, warn=frame == 0)
                if next_mask is not None and next_mask[0] == frame:
                    m = np.unpackbits(next_mask[1], axis=-1, count=h * w).reshape(k, h, w)
                    img = draw_masks(img, m.astype(bool))
                    next_mask = next(masks, None)
                white = (255, 255, 255)
                cv2.putText(img, str(frame), (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, white, 2)
                writer.write(img)
                if frame in picks:
                    tiles_img.append(cv2.resize(img, (320, int(320 * h / w))))
            if next_mask is not None or last != frames[-1]:
                raise UserError(
                    f"the video has {last + 1} frames but the masks cover frames "
                    f"{frames[0]}-{frames[-1]}"
                    + (" (a last batch is missing?)" if last > frames[-1] else ""),
                    video,
                    "give the video these masks were made from, and every batch of it",
                )
    finally:
        reader.close()  # its decoder thread has ended: only now may the capture go
        cap.release()
    cols = 4
    rows = math.ceil(len(tiles_img) / cols) or 1
    th, tw = tiles_img[0].shape[:2] if tiles_img else (240, 320)
    grid = np.zeros((rows * th, cols * tw, 3), dtype=np.uint8)
    for j, t in enumerate(tiles_img):
        r, c = divmod(j, cols)
        grid[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = t
    with atomic_path(sheet) as tmp:
        ok, buf = cv2.imencode(".png", grid)
        tmp.write_bytes(buf.tobytes())
