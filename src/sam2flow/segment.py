"""Segment: SAM 2 over one batch of JPEG frames, inside the memory guard.

Every frame of the batch gets a slot: propagation runs forward from the prompt frame and
backward to the batch start. The guard's unit of work is the batch in *processing order*
(prompt frame, forward to the end, then backward to the start); when it splits the unit,
chunk k+1 overlaps chunk k by one frame and starts from chunk k's mask on that frame
(``add_new_mask``), so tracking continues instead of restarting from a stale prompt.

Memory stays flat with batch length: frames come from a lazy ``FrameSource`` and the
non-conditioning outputs SAM 2 will never read again are dropped during propagation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .atomic import check_writable, write_text
from .errors import UserError, first_line
from .frame_folders import (
    MANIFEST,
    check_batch_frames,
    check_consecutive,
    check_frame_sizes,
    frame_paths,
    frame_size,
    read_manifest,
)
from .frame_source import FrameSource
from .memory import GuardConfig, MemoryGuard, Plan
from .memory.estimate import check_host_memory, estimate_host
from .memory.limits import enable_expandable_segments
from .memory.oom import maybe_inject_oom_at
from .memory.recovery import frame_ranges
from .models import RANDOM_WEIGHTS_WARNING, LoadedModel, ModelOptions, build_model
from .outputs import MaskStore, write_batch_outputs
from .prompts import (
    BatchPrompt,
    PromptOptions,
    check_carried,
    check_prompt,
    check_prompt_frame,
    prompt_for_batch,
)
from .restore import restore_batch, restore_frame
from .vocabulary import DECODERS, NO_PROMPT, SKIPPED_OOM

log = logging.getLogger(__name__)


@contextlib.contextmanager
def lazy_frames(source: FrameSource):
    """Let ``init_state`` take a ``FrameSource`` in place of a JPEG folder.

    sam2 1.1.0's ``init_state`` only accepts a path; its own ``async_loading_frames`` shows
    that ``images`` may be any object with ``len`` and ``[]``. This swaps the loader for the
    duration of one ``init_state`` call and hands it the source instead.
    """
    import sam2.sam2_video_predictor as svp

    original = svp.load_video_frames

    def load(video_path, **kwargs):
        if video_path is source:
            return source, source.video_height, source.video_width
        return original(video_path=video_path, **kwargs)

    svp.load_video_frames = load
    try:
        yield
    finally:
        svp.load_video_frames = original


def memory_window(predictor) -> int:
    """How many frames back SAM 2 reads non-conditioning outputs (memories and pointers)."""
    stride = int(getattr(predictor, "memory_temporal_stride_for_eval", 1) or 1)
    window = int(predictor.num_maskmem) * stride
    if getattr(predictor, "use_obj_ptrs_in_encoder", False):
        window = max(window, int(predictor.max_obj_ptrs_in_encoder))
    return window


def prune_outputs(state: dict, frame: int, reverse: bool, window: int, keep_near: int) -> int:
    """Drop non-conditioning outputs more than ``window`` frames behind ``frame``.

    Outputs within ``window`` of ``keep_near`` (the prompt frame) are kept, since backward
    propagation from there reads them. Returns how many entries were dropped.
    """
    dropped = 0
    for out in state["output_dict_per_obj"].values():
        non_cond = out["non_cond_frame_outputs"]
        stale = [
            k
            for k in non_cond
            if (k > frame + window if reverse else k < frame - window)
            and abs(k - keep_near) > window
        ]
        for k in stale:
            del non_cond[k]
        dropped += len(stale)
    return dropped


@dataclass
class BatchJob:
    """One batch: its frames on disk, its prompt, and where its outputs go."""

    frames_dir: Path
    out_dir: Path
    prompt: BatchPrompt | None
    video: str = ""
    batch: str = ""
    decoder: str = DECODERS[0]
    paths: dict[int, Path] | None = (
        None  # frame_folders.frame_paths of frames_dir, if already listed
    )
    threads: int | None = None  # decoding threads (frames.decode_threads); None: every core


class _Segmenter:
    """The work function the guard calls, with what it needs between chunks.

    Local positions index ``self.frames``/``self.paths``: the batch's own frames, preceded
    by the previous batch's last frame when the prompt is carried from there. The guard
    runs over ``self.order`` (the batch's own frames in processing order) and hands each
    chunk the carry ``(position, masks)`` it must start from, or ``None`` after frames it
    had to skip: the chunk then starts on an anchor (``self.anchors``), a frame with its
    own prompt or the first frame of the backward range.
    """

    def __init__(self, job: BatchJob, model: LoadedModel, paths: dict[int, Path], store: MaskStore):
        self.job, self.model, self.store = job, model, store
        self.prompt = prompt = job.prompt
        self.carried = prompt.frame not in paths  # on the previous batch's last frame
        self.frames = [prompt.frame] * self.carried + list(paths)
        self.paths = [prompt.image] * self.carried + list(paths.values())
        self.p = self.frames.index(prompt.frame)
        n = len(self.frames)
        # Processing order: prompt frame, forward to the end, then backward to the start.
        self.order = list(range(self.p, n)) + list(range(self.p - 1, -1, -1))
        self.obj_ids = sorted(prompt.objects)
        # A carried prompt is the carry into the first chunk, as between two chunks.
        self.initial_carry = None  # pragma: no mutate
        if self.carried:
            self.order = self.order[1:]
            self.initial_carry = (self.p, {o: prompt.objects[o].mask for o in self.obj_ids})
        # Where the guard may start again after a skip: the backward range's first frame
        # (from the prompt), and frames with their own prompt for every object.
        local = {f: i for i, f in enumerate(self.frames)}
        self.reprompts = {
            local[f]: objects
            for f, objects in prompt.anchors.items()
            if f in local and f != prompt.frame and set(objects) >= set(self.obj_ids)
        }
        starts = set(self.reprompts) | ({self.p - 1} if self.p > 0 else set())
        self.anchors = [k for k, i in enumerate(self.order) if i in starts]
        self.window = memory_window(model.predictor)
        self.on_device = model.device
        self.progress = None  # pragma: no mutate
        self.position = {i: k for k, i in enumerate(self.order)}
        self.plan = None  # the attempt in progress, and the last position it finished
        self.reached = -1

    def reached_in(self, plan: Plan):
        """How far ``plan`` got (``recovery.Progress``): the frames it finished stay, and
        the guard goes on from the last one with its masks, as from a chunk seam."""
        if plan is not self.plan:
            return None
        if self.reached < plan.first_frame:
            return plan.first_frame - 1, None
        last = self.order[self.reached]
        return self.reached, (last, self._masks_on(last))

    def _masks_on(self, local: int) -> dict:
        return {obj: self.store.mask(self.frames[local], k) for k, obj in enumerate(self.obj_ids)}

    def restore_device(self) -> None:
        """Put the model back on its own device after a CPU fallback, so that the next
        batch in this process runs (and is recorded) where the model says it is."""
        if self.on_device != self.model.device:
            self.model.predictor.to(self.model.device)
            self.on_device = self.model.device

    def __call__(self, plan: Plan, carry):
        self.plan, self.reached = plan, plan.first_frame - 1
        chunk = self.order[plan.first_frame : plan.last_frame + 1]
        fwd = [i for i in chunk if i >= self.p]  # ascending
        bwd = [i for i in chunk if i < self.p]  # descending
        if plan.device != self.on_device:  # inside the attempt: an OOM here is retried
            self.model.predictor.to(plan.device)
            self.on_device = plan.device
        if self.p in chunk:  # the first chunk: prompt, then both directions
            self._pass(plan, self.p, fwd, bwd, store_anchor=True)
        else:
            if fwd and carry is None:  # after a skip: start again on this frame's prompt
                self._pass(plan, fwd[0], fwd[1:], [], prompts=self.reprompts[fwd[0]])
            elif fwd:  # continues from the previous chunk's (or batch's) last mask
                self._pass(plan, carry[0], fwd, [], masks=carry[1])
            if bwd and bwd[0] == self.p - 1:  # right below the prompt frame: from the prompt
                self._pass(plan, self.p, [], bwd)
            elif bwd and carry is None:
                self._pass(plan, bwd[0], [], bwd[1:], prompts=self.reprompts[bwd[0]])
            elif bwd:
                self._pass(plan, carry[0], [], bwd, masks=carry[1])
        last = chunk[-1]
        return last, self._masks_on(last)

    def _pass(
        self,
        plan: Plan,
        anchor: int,
        fwd: list,
        bwd: list,
        *,
        masks: dict | None = None,
        prompts: dict | None = None,
        store_anchor: bool | None = None,
    ) -> None:
        """One inference state: the anchor with its prompt (the batch's, ``prompts`` of a
        re-anchor, or carried ``masks``), then the frames of one or both directions.
        The anchor's own result is stored when it is met for the first time."""
        span = [anchor, *fwd, *bwd]
        lo, hi = min(span), max(span)
        if store_anchor is None:
            store_anchor = prompts is not None
        source = FrameSource(
            self.paths[lo : hi + 1],
            self.model.image_size,
            decoder=self.job.decoder,
            threads=self.job.threads,
        )
        try:
            with torch.inference_mode(), self._autocast(plan.device):
                with lazy_frames(source):
                    state = self.model.predictor.init_state(
                        source, offload_state_to_cpu=plan.offload
                    )
                self._add_anchor(state, anchor - lo, masks, prompts)
                if fwd or (store_anchor and not bwd):
                    end = fwd[-1] if fwd else anchor
                    self._propagate(state, anchor, lo, end, False, store_anchor)
                if bwd:
                    self._propagate(state, anchor, lo, bwd[-1], True, store_anchor and not fwd)
                del state
        finally:
            source.close()

    def frames_of(self, first: int, last: int) -> list[int]:
        """Global frames of positions ``first..last`` of the processing order."""
        return [self.frames[self.order[i]] for i in range(first, last + 1)]

    def _autocast(self, device: torch.device):
        if device.type == "cuda":  # pragma: no mutate
            return self.model.autocast()
        return contextlib.nullcontext()

    def _add_anchor(
        self, state: dict, local_frame: int, masks: dict | None, prompts: dict | None
    ) -> None:
        predictor = self.model.predictor
        if masks is not None:
            for obj in self.obj_ids:
                predictor.add_new_mask(state, local_frame, obj, torch.from_numpy(masks[obj]))
            return
        prompts = prompts if prompts is not None else self.prompt.objects
        for obj in self.obj_ids:
            op = prompts[obj]
            if op.points is not None or op.box is not None:
                predictor.add_new_points_or_box(
                    state, local_frame, obj, points=op.points, labels=op.labels, box=op.box
                )
            if op.mask is not None:
                predictor.add_new_mask(state, local_frame, obj, torch.from_numpy(op.mask))

    def _propagate(
        self, state: dict, start: int, lo: int, end: int, reverse: bool, store_start: bool
    ) -> None:
        predictor = self.model.predictor
        for local_idx, _, logits in predictor.propagate_in_video(
            state,
            start_frame_idx=start - lo,
            max_frame_num_to_track=abs(end - start),
            reverse=reverse,
        ):
            idx = local_idx + lo
            # The start frame was stored by an earlier pass (or belongs to the previous
            # batch), unless this pass is the first to meet it.
            if idx != start or store_start:
                maybe_inject_oom_at(self.frames[idx])
                self.store.put(self.frames[idx], logits)
                self.reached = self.position[idx]
                if self.progress is not None:
                    self.progress.update(1)
            prune_outputs(state, local_idx, reverse, self.window, self.p - lo)


def segment_batch(
    job: BatchJob,
    model: LoadedModel,
    guard: MemoryGuard,
    progress: bool = False,
    record_extra: dict | None = None,
) -> dict:
    """Segment every frame of ``job`` and write ``masks.npz``, ``frames.csv``, ``memory.json``.

    Returns the record written to ``memory.json``.
    """
    paths = job.paths if job.paths is not None else frame_paths(job.frames_dir)
    frames = list(paths)
    started = time.perf_counter()
    prompt = job.prompt if job.prompt is not None and prompt_reaches(job.prompt, frames) else None
    height, width = frame_size(paths[frames[0]])
    obj_ids = sorted(prompt.objects) if prompt and prompt.objects else [1]
    check_writable(job.out_dir)  # the masks are spilled there as frames finish
    store = MaskStore(frames, obj_ids, height, width, spill_dir=job.out_dir)
    if prompt is None or not prompt.objects:
        missing = prompt.missing if prompt is not None else None
        log.warning(
            "batch %s: no usable prompt in frames %d-%d%s",
            job.batch,
            frames[0],
            frames[-1],
            f" ({missing})" if missing else "",
        )
        record = guard.record_without_work(len(frames)).to_dict()
        if missing:  # a broken chain: listed as skipped, so that a rerun mends it
            record.update(
                status="skipped",
                frames_skipped=len(frames),
                skipped_ranges=[[frames[0], frames[-1]]],
                skip_reason=missing,
                skip_reasons=[missing],
            )
        store.mark(frames, NO_PROMPT)
    else:
        work = _Segmenter(job, model, paths, store)
        precision = str(model.dtype).removeprefix("torch.") if model.dtype else "float32"
        key = guard.sizing_key(
            model.name, model.image_size, len(obj_ids), precision, (height, width)
        )
        bar = _progress_bar(progress, len(frames), job.batch)
        work.progress = bar
        try:
            unit = guard.run(
                work,
                0,
                len(work.order) - 1,
                carry=work.initial_carry,
                key=key,
                anchors=work.anchors,
                frames_of=work.frames_of,
                progress=work.reached_in,
            )
        except Exception as exc:
            write_crash_record(job, guard.attempts, exc)
            raise
        finally:
            work.restore_device()
            if bar is not None:
                bar.close()
        record = unit.to_dict()
        _positions_to_frames(record, work)
        for lo_f, hi_f in record["skipped_ranges"]:
            store.mark([f for f in frames if lo_f <= f <= hi_f], SKIPPED_OOM)
        record["prompt_frame"] = prompt.frame
        record["prompt_source"] = prompt.source
    # Rounded once, so that frames_per_second is exactly frames / seconds as recorded.
    seconds = round(time.perf_counter() - started, 3)
    record.update(
        video=job.video,
        batch=job.batch,
        first_frame=frames[0],
        last_frame=frames[-1],
        objects=obj_ids,
        model=model.name,
        weights=model.weights,
        image_size=model.image_size,
        seconds=seconds,
        frames_per_second=round(len(frames) / seconds, 3) if seconds > 0 else None,
        host_peak_rss_bytes=peak_rss_bytes(),
    )
    if model.weights == "random":
        record["warning"] = RANDOM_WEIGHTS_WARNING
    record["frame_status"] = store.status_counts()
    record.update(record_extra or {})
    write_batch_outputs(job.out_dir, store, record)
    (Path(job.out_dir) / CRASH_RECORD).unlink(missing_ok=True)  # an earlier try's
    log.info(
        "batch %s: %s, %d frames in %.1f s (%.2f frames/s)",
        job.batch,
        record["status"],
        len(frames),
        seconds,
        record["frames_per_second"] or 0,
    )
    return record


CRASH_RECORD = "crashed.json"


def write_crash_record(job: BatchJob, attempts: list, exc: BaseException) -> None:
    """Before the job dies of an error that is not an OOM: what the guard had tried, its
    peaks, and the error, in ``crashed.json`` beside where ``memory.json`` would be (a
    failed job's declared outputs are deleted; this file is not one of them). Writing it
    must never hide the error itself."""
    from dataclasses import asdict

    record = {
        "video": job.video,
        "batch": job.batch,
        "error": f"{type(exc).__name__}: {first_line(exc, '')}".removesuffix(": "),
        "attempts": [asdict(a) for a in attempts],
        "host_peak_rss_bytes": peak_rss_bytes(),
    }
    try:
        check_writable(job.out_dir)
        write_text(Path(job.out_dir) / CRASH_RECORD, json.dumps(record, indent=1))
        log.error("batch %s failed; what it tried: %s", job.batch, Path(job.out_dir) / CRASH_RECORD)
    except Exception as why:  # noqa: BLE001 - the job's own error is what must be seen
        log.warning("could not write %s: %s", Path(job.out_dir) / CRASH_RECORD, why)


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (what a job's ``mem_mb`` must cover):
    Linux's own high-water mark (``VmHWM``; ``ru_maxrss`` of a forked process can still
    hold its parent's), else ``ru_maxrss``."""
    import re
    import resource
    import sys

    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) * 1024
    except (OSError, TypeError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


def prompt_reaches(prompt: BatchPrompt, frames: list[int]) -> bool:
    """Whether ``prompt`` can start a batch of ``frames``: it lies on one of them, or it is
    carried onto the frame right before them (with that frame's image)."""
    if prompt.frame in frames:
        return True
    return prompt.image is not None and prompt.frame == frames[0] - 1


def _positions_to_frames(record: dict, work: _Segmenter) -> None:
    """Rewrite the guard's positions (processing order) as global frame indices; a skipped
    range that spans both directions becomes two, each with the range's reason."""
    for attempt in record["attempts"]:
        runs = frame_ranges(work.frames_of(attempt["first_frame"], attempt["last_frame"]))
        attempt["first_frame"], attempt["last_frame"] = runs[0][0], runs[-1][1]
        attempt["frame_ranges"] = runs
    ranges, reasons = [], []
    for (lo, hi), why in zip(record["skipped_ranges"], record["skip_reasons"], strict=True):
        runs = frame_ranges(work.frames_of(lo, hi))
        ranges += runs
        reasons += [why] * len(runs)
    record["skipped_ranges"], record["skip_reasons"] = ranges, reasons


def _progress_bar(enabled: bool, total: int, batch: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"batch {batch}", unit="frame", disable=False)


def segment_folder(
    frames_dir: str | Path,
    out_dir: str | Path,
    *,
    prompt: PromptOptions,
    model: ModelOptions | LoadedModel,
    memory: GuardConfig,
    video: str = "",
    batch: str = "",
    progress: bool = False,
    record_extra: dict | None = None,
    mem_mb: int | None = None,
    decoder: str = "sam2",
    fail_on_skip: bool = False,
    threads: int | None = None,
) -> dict:
    """Everything ``sam2flow segment`` and the ``segment_batch`` rule do, in one call.

    ``prompt``: where the batch's prompt comes from (the frame count of the video is read
    from the extraction's ``frames.json`` when not given); ``model``: which model to build,
    or a model already built. ``mem_mb``: the host memory
    the job was given; below the estimated need it fails at once (``MemoryError``) so that
    a retry can ask for more. ``decoder``: how JPEGs become model input
    (``vocabulary.DECODERS``; ``sam2`` gives stock SAM 2's masks bit for bit).
    ``fail_on_skip``: raise ``BatchSkipped`` after writing the outputs of a batch that
    skipped frames, so that a workflow's retry runs with more resources. ``threads``: for
    decoding frames ahead of the model (``None``: every core this process may use).
    """
    enable_expandable_segments()  # before the model initialises CUDA
    frames_dir = Path(frames_dir)
    restore_batch(frames_dir.parent, frames_dir.name)  # when a finished run deleted its frames
    paths = frame_paths(frames_dir)
    frames = list(paths)
    manifest = frames_dir.parent / MANIFEST
    if manifest.is_file():
        extraction = read_manifest(frames_dir.parent)
        check_batch_frames(frames, frames_dir, extraction)
        if extraction.source:  # so that a merge tells two videos apart, named or not
            record_extra = {"video_identity": extraction.source, **(record_extra or {})}
        if extraction.shortfall():
            record_extra = {"video_warning": extraction.shortfall(), **(record_extra or {})}
        if prompt.video_frames is None:
            prompt = replace(prompt, video_frames=extraction.frames)
        if prompt.carry_from and not prompt.carry_image:
            image = restore_frame(frames_dir.parent, frames[0] - 1)
            prompt = replace(prompt, carry_image=image and str(image))
    else:
        check_consecutive(frames, frames_dir)
    check_frame_sizes(paths)
    height, width = frame_size(paths[frames[0]])
    if prompt.prompt_frame is not None:  # a manual prompt must be on a real frame
        check_prompt_frame(int(prompt.prompt_frame), prompt.video_frames or frames[-1] + 1)
    batch_prompt = prompt_for_batch(frames, prompt)
    if batch_prompt is not None and batch_prompt.image is None:
        check_prompt(batch_prompt, height, width, prompt.video_frames)
    elif batch_prompt is not None:
        identity = (record_extra or {}).get("video_identity")
        check_carried(batch_prompt, height, width, prompt.carry_from, identity)
    loaded = model if isinstance(model, LoadedModel) else build_model(model)
    log.info("host memory given to this job: mem_mb=%s", mem_mb)
    if mem_mb:
        objects = len(batch_prompt.objects) if batch_prompt and batch_prompt.objects else 1
        need = estimate_host(
            len(frames),
            height,
            width,
            objects,
            loaded.name,
            loaded.image_size,
            device=loaded.device.type,
        )
        check_host_memory(need, mem_mb, f"batch {batch or frames_dir}")
    check_writable(out_dir)  # the inputs are good: can the results be saved? before the model runs
    guard = MemoryGuard(memory, loaded.device)
    job = BatchJob(frames_dir, Path(out_dir), batch_prompt, video, batch, decoder, paths, threads)
    record = segment_batch(job, loaded, guard, progress=progress, record_extra=record_extra)
    if fail_on_skip and record["status"] == "skipped":
        raise BatchSkipped(
            f"batch {batch or frames_dir} skipped frames "
            f"{', '.join(f'{a}-{b}' for a, b in record['skipped_ranges'])} "
            f"({record['skip_reason']})",
            Path(out_dir) / "memory.json",
            "failing the job (memory.fail_on_skip) so that its retry asks for more",
        )
    return record


class BatchSkipped(UserError):
    """A batch ended with skipped frames and the user asked for its job to fail."""
