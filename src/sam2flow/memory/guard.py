"""The memory guard: one object that applies the limits, watches memory, remembers sizes
and runs units of work with graduated recovery.

>>> guard = MemoryGuard(GuardConfig(monitoring=False), device="cpu")
>>> guard.run(lambda plan, carry: None, 0, 9).status
'ok'
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..vocabulary import (
    CHUNKED,
    DEFAULT_GROW_AFTER,
    DEFAULT_MIN_CHUNK,
    DEFAULT_THRESHOLD,
    OFFLOAD,
    WHOLE,
)
from . import devices, limits
from .monitoring import Monitor
from .recovery import UnitRecord, run_with_recovery
from .sizing import SizeMemory, sizing_key

log = logging.getLogger(__name__)


@dataclass
class GuardConfig:
    """The memory options of the command line and of config ``memory:``."""

    max_gpu_memory_gb: float | None = None
    memory_threshold: float = DEFAULT_THRESHOLD
    min_chunk: int = DEFAULT_MIN_CHUNK
    force_cpu_offload: bool = False
    allow_cpu_fallback: bool = False
    adaptive_batch_size: bool = True
    monitoring: bool = True
    sizing_file: str | Path | None = None
    sizing_grow_after: int = DEFAULT_GROW_AFTER  # clean runs before a remembered OOM is forgotten
    start_chunk: int | None = None  # start chunked at this size (reruns of skipped batches)

    @classmethod
    def from_options(cls, options: dict, rerun: str = "") -> GuardConfig:
        """From config ``memory:`` (unknown keys ignored), adjusted for a rerun strategy:
        ``offload`` starts at ``min_chunk`` with CPU offload, ``chunked`` at ``min_chunk``,
        ``same`` (or ``""``) as configured."""
        names = {f.name for f in dataclasses.fields(cls)}
        config = cls(**{k: v for k, v in options.items() if k in names})
        if rerun in (OFFLOAD, CHUNKED):
            config.start_chunk = config.min_chunk
            config.force_cpu_offload = config.force_cpu_offload or rerun == OFFLOAD
        elif rerun not in ("", "same"):
            raise ValueError(f"rerun_strategy must be offload, chunked or same, got {rerun!r}")
        return config

    def __post_init__(self) -> None:
        self.memory_threshold = limits.validate_threshold(self.memory_threshold)
        self.max_gpu_memory_gb = limits.validate_max_gpu_memory(self.max_gpu_memory_gb)
        if int(self.min_chunk) < 1:
            raise ValueError(f"min_chunk must be >= 1, got {self.min_chunk!r}")
        self.min_chunk = int(self.min_chunk)


class MemoryGuard:
    """Limits, monitoring, adaptive sizing and recovery for one device."""

    def __init__(self, config: GuardConfig, device: str | torch.device = "auto") -> None:
        self.config = config
        limits.enable_expandable_segments()
        self.device = device if isinstance(device, torch.device) else devices.resolve_device(device)
        self.cap_bytes = limits.apply_memory_cap(self.device, config.max_gpu_memory_gb)
        self.sizes = (
            SizeMemory(config.sizing_file, config.sizing_grow_after)
            if config.adaptive_batch_size and config.sizing_file
            else None
        )
        self.attempts: list = []  # the last unit's attempts, kept if it ends in an error

    def sizing_key(
        self,
        model: str,
        image_size: int,
        objects: int,
        precision: str = "fp32",
        frame_size: tuple[int, int] | None = None,
    ) -> str:
        """The adaptive-sizing key for this device and workload."""
        return sizing_key(
            devices.device_name(self.device),
            devices.total_memory(self.device),
            model,
            image_size,
            objects,
            self.cap_bytes,
            precision,
            frame_size,
        )

    def record_without_work(self, frames: int) -> UnitRecord:
        """The record of a unit with nothing to run, filled like any other."""
        return UnitRecord.not_run(frames, self.device, self.cap_bytes)

    def run(
        self,
        work: Callable,
        first: int,
        last: int,
        *,
        carry: Any = None,
        key: str | None = None,
        start_chunk: int | None = None,
        anchors: Collection[int] = (),
        frames_of: Callable[[int, int], list[int]] | None = None,
        progress: Callable | None = None,
    ) -> UnitRecord:
        """Run ``work(plan, carry)`` over positions ``first..last`` inside the guard
        (``anchors``, ``frames_of``, ``progress``: see ``recovery.run_with_recovery``)."""
        cfg = self.config
        self.attempts = []
        monitor = Monitor(self.device, cfg.monitoring, self.cap_bytes)
        sizing = {
            "file": None,
            "key": key,
            "start_chunk": None,
            "after_whole": None,
            "from": WHOLE,
            "warning": None,
        }
        if start_chunk is None and cfg.start_chunk is not None:
            start_chunk, sizing["from"] = cfg.start_chunk, "rerun strategy"
        elif start_chunk is not None:
            sizing["from"] = "caller"
        after_whole = None
        if start_chunk is None and self.sizes is not None and key is not None:
            sizing["file"] = str(self.sizes.path)
            try:
                after_whole = self.sizes.size_after_whole_fails(key, last - first + 1)
            except Exception as exc:  # noqa: BLE001 - bookkeeping never costs a batch
                sizing["warning"] = _sizing_warning("read", self.sizes.path, exc)
            sizing["after_whole"] = after_whole
        if start_chunk is not None:
            start_chunk = max(start_chunk, min(cfg.min_chunk, last - first + 1))
        sizing["start_chunk"] = start_chunk
        record = run_with_recovery(
            work,
            first,
            last,
            device=self.device,
            min_chunk=cfg.min_chunk,
            start_chunk=start_chunk,
            force_cpu_offload=cfg.force_cpu_offload,
            allow_cpu_fallback=cfg.allow_cpu_fallback,
            carry=carry,
            anchors=anchors,
            monitor=monitor,
            memory_cap_bytes=self.cap_bytes,
            frames_of=frames_of,
            progress=progress,
            after_whole=after_whole,
            attempts=self.attempts,
        )
        if self.sizes is not None and key is not None:
            try:
                self.sizes.update(key, record.attempts)
            except Exception as exc:  # noqa: BLE001 - bookkeeping never costs a batch
                sizing["warning"] = _sizing_warning("update", self.sizes.path, exc)
            if self.sizes.warnings and not sizing["warning"]:
                sizing["warning"] = "; ".join(self.sizes.warnings)
            self.sizes.warnings.clear()
        record.sizing = sizing
        # Between units, never per frame: clean up when usage passed the threshold.
        limits.clean_up_if_needed(self.device, monitor.snapshot("after unit"), cfg.memory_threshold)
        record.snapshots = [s.to_dict() for s in monitor.snapshots]
        return record


def _sizing_warning(action: str, path: Path, exc: Exception) -> str:
    text = f"could not {action} the sizing file {path} ({type(exc).__name__}: {exc})"
    log.warning("%s; the batch goes on", text)
    return text
