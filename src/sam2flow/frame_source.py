"""Frame source: a batch's JPEGs as SAM 2's model input, decoded ahead on a thread pool.

The one file that knows SAM 2's frame loader (``sam2.utils.misc._load_img_as_tensor`` and
its normalisation): an upgrade of sam2 that changes how frames are loaded touches this
file only.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .errors import BadValue, UserError, brief
from .frame_folders import frame_size
from .vocabulary import DECODERS

if TYPE_CHECKING:  # torch only where frames become model input: extraction starts fast
    import torch


# SAM 2's normalisation (ImageNet mean and std).
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)


_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


#: How frames become model input. ``sam2``: SAM 2's own loader (PIL decode, PIL's bicubic
#: resize, float64 scaling), so masks are bit-identical to stock SAM 2's on the same JPEGs.
#: ``opencv``: OpenCV decode and bilinear resize in float32, faster (BENCHMARKS.md) but the
#: model sees slightly different pixels.


def sam2_frame(path: Path, image_size: int) -> torch.Tensor:
    """One frame exactly as SAM 2's ``load_video_frames`` makes it (its own loader)."""
    import torch
    from sam2.utils.misc import _load_img_as_tensor

    img, _, _ = _load_img_as_tensor(str(path), image_size)
    return (img.float() - torch.from_numpy(_MEAN)[:, None, None]) / torch.from_numpy(_STD)[
        :, None, None
    ]


def opencv_frame(path: Path, image_size: int) -> torch.Tensor:
    """One frame through OpenCV: decode, bilinear resize, normalise in float32."""
    import torch

    data = np.fromfile(path, dtype=np.uint8)
    if path.suffix.lower() in (".jpg", ".jpeg") and b"\xff\xd9" not in bytes(data[-64:]):
        # OpenCV decodes a JPEG cut short without an error (the rest grey): refuse it
        raise UserError("cannot read frame (JPEG cut short)", path, "extract the frames again")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)  # pragma: no mutate
    if img is None:
        raise UserError("cannot read frame", path, "extract the frames again")
    size = (image_size, image_size)
    img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)  # pragma: no mutate
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)
    rgb *= 1.0 / 255.0
    rgb -= _MEAN
    rgb /= _STD
    return torch.from_numpy(rgb).permute(2, 0, 1)


def decode_threads(threads: int | None, read_ahead: int) -> int:
    """Decoding threads for a ``FrameSource``: as asked (or every core this process may
    use), and no more than the frames there can be to decode at once.

    >>> decode_threads(4, 8), decode_threads(16, 8), decode_threads(0, 8), decode_threads(3, 0)
    (4, 9, 1, 1)
    """
    wanted = len(os.sched_getaffinity(0)) if threads is None else int(threads)
    return max(1, min(wanted, read_ahead + 1))


class FrameSource:
    """Frames of a batch as SAM 2 wants them, decoded on demand and ahead of the model.

    Stands in for the ``images`` of SAM 2's inference state (as sam2's own
    ``async_loading_frames`` does): ``len()`` and ``source[i]`` returning a normalised
    3 x S x S float tensor for local index ``i``. Only a few frames are held: the one in
    use and ``read_ahead`` frames decoded in the direction of travel by ``threads``
    threads (default: the cores this process may use; at 1024 px one JPEG takes 35-45 ms
    of a core, so one thread starves a GPU). Each frame is decoded on its own, so the
    tensors are the same whatever the number of threads. ``decoder`` is one of
    ``DECODERS``.
    """

    def __init__(
        self,
        paths: list[Path],
        image_size: int,
        read_ahead: int = 8,
        decoder: str = "sam2",
        threads: int | None = None,
    ) -> None:
        if not paths:
            raise ValueError("FrameSource needs at least one frame")
        if decoder not in DECODERS:
            raise BadValue(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        self._decode = sam2_frame if decoder == "sam2" else opencv_frame
        self.paths = list(paths)
        self.image_size = int(image_size)
        self.read_ahead = max(0, int(read_ahead))
        self.workers = decode_threads(threads, self.read_ahead)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="frames")
        self._futures: OrderedDict[int, Future] = OrderedDict()
        self._lock = threading.Lock()
        self._last = -1  # pragma: no mutate
        self.video_height, self.video_width = frame_size(self.paths[0])

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> torch.Tensor:
        """Decode, resize and normalise one frame (runs in the reader thread)."""
        try:
            return self._decode(self.paths[index], self.image_size)
        except (OSError, SyntaxError) as exc:  # PIL: unreadable or truncated file
            raise UserError(
                f"cannot read frame ({brief(exc)})", self.paths[index], "extract the frames again"
            ) from exc

    def __getitem__(self, index: int) -> torch.Tensor:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        with self._lock:
            step = -1 if index < self._last else 1
            self._last = index
            fut = self._futures.pop(index, None) or self._pool.submit(self.load, index)
            wanted = {index + step * k for k in range(1, self.read_ahead + 1)}
            for stale in [i for i in self._futures if i not in wanted]:
                self._futures.pop(stale).cancel()
            for i in sorted(wanted, key=lambda i: abs(i - index)):
                if 0 <= i < len(self) and i not in self._futures:  # pragma: no mutate
                    self._futures[i] = self._pool.submit(self.load, i)
        return fut.result()

    def close(self) -> None:
        """Stop the reader thread and drop frames read ahead."""
        with self._lock:
            for fut in self._futures.values():
                fut.cancel()
            self._futures.clear()
        self._pool.shutdown(wait=True)
