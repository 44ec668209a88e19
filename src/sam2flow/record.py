"""Record: what ``memory.json`` holds for one batch, its schema, and its one check.

Every path that writes a batch record (segmented, recovered, skipped, no prompt) goes
through ``write_batch_outputs``, which checks it here; the summary checks what it reads.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import fastjsonschema
import jsonschema

from .errors import UserError
from .vocabulary import BATCH_STATUSES, FRAME_STATUSES, LEVELS

#: A frame slot's status: segmented, skipped (out of memory), never prompted, empty mask.

_INT = {"type": "integer", "minimum": 0}
_INT_OR_NULL = {"type": ["integer", "null"], "minimum": 0}
_RANGE = {"type": "array", "items": _INT, "minItems": 2, "maxItems": 2}

ATTEMPT_SCHEMA = {
    "type": "object",
    "required": [
        "level",
        "chunk_size",
        "first_frame",
        "last_frame",
        "outcome",
        "error",
        "seconds",
        "peak_allocated_bytes",
        "peak_reserved_bytes",
        "nvml_used_bytes",
    ],
    "properties": {
        "level": {"enum": list(LEVELS)},
        "chunk_size": {"type": "integer", "minimum": 1},
        "first_frame": _INT,
        "last_frame": _INT,
        "frame_ranges": {"type": "array", "items": _RANGE},
        "outcome": {"enum": ["ok", "oom"]},
        "error": {"type": ["string", "null"]},
        "seconds": {"type": "number", "minimum": 0},
        "peak_allocated_bytes": _INT_OR_NULL,
        "peak_reserved_bytes": _INT_OR_NULL,
        "nvml_used_bytes": _INT_OR_NULL,
        "frames_done": _INT,
        "memory_was_there": {"type": "boolean"},
        "sized_for_memory": {"type": "boolean"},
    },
    "additionalProperties": False,
}

#: The schema of ``memory.json``.
SCHEMA = {
    "type": "object",
    "required": [
        "status",
        "frames_total",
        "frames_ok",
        "frames_skipped",
        "device",
        "gpu_name",
        "memory_cap_bytes",
        "status_level",
        "peak_allocated_bytes",
        "final_chunk_size",
        "attempts",
        "skipped_ranges",
        "skip_reason",
        "snapshots",
        "video",
        "batch",
        "first_frame",
        "last_frame",
        "objects",
        "model",
        "weights",
        "image_size",
        "seconds",
        "frames_per_second",
        "frame_status",
    ],
    "properties": {
        "status": {"enum": list(BATCH_STATUSES)},
        "frames_total": {"type": "integer", "minimum": 1},
        "frames_ok": _INT,
        "frames_skipped": _INT,
        "device": {"type": "string"},
        "gpu_name": {"type": "string"},
        "memory_cap_bytes": _INT_OR_NULL,
        "status_level": {"type": "string"},
        "peak_allocated_bytes": _INT_OR_NULL,
        "final_chunk_size": _INT,
        "attempts": {"type": "array", "items": ATTEMPT_SCHEMA},
        "skipped_ranges": {"type": "array", "items": _RANGE},
        "skip_reason": {"type": ["string", "null"]},
        "skip_reasons": {"type": "array", "items": {"type": "string"}},
        "failure_cap": _INT_OR_NULL,
        "snapshots": {"type": "array", "items": {"type": "object"}},
        "video": {"type": "string"},
        "batch": {"type": "string"},
        "first_frame": _INT,
        "last_frame": _INT,
        "objects": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
        "model": {"type": "string"},
        "weights": {"type": "string"},
        "image_size": {"type": "integer", "minimum": 1},
        "seconds": {"type": "number", "minimum": 0},
        "frames_per_second": {"type": ["number", "null"]},
        "frame_status": {
            "type": "object",
            "propertyNames": {"enum": list(FRAME_STATUSES)},
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
        "sizing": {
            "type": ["object", "null"],
            "properties": {
                "file": {"type": ["string", "null"]},
                "key": {"type": ["string", "null"]},
                "start_chunk": _INT_OR_NULL,
                "after_whole": _INT_OR_NULL,
                "from": {"enum": ["whole", "sizing file", "rerun strategy", "caller"]},
                "warning": {"type": ["string", "null"]},
            },
            "additionalProperties": False,
        },
        "prompt_frame": _INT,
        "prompt_source": {"type": "string"},
        "warning": {"type": "string"},
        "video_warning": {"type": "string"},
        "video_identity": {"type": "string"},
        "host_peak_rss_bytes": _INT,
        "rerun_strategy": {"type": "string"},
    },
    "additionalProperties": False,
}


@functools.cache
def _compiled():
    """The schema compiled to Python (~40x faster than ``jsonschema``: a summary of 10,000
    records checks each); ``jsonschema`` words the message when a record fails."""
    return fastjsonschema.compile(SCHEMA)


@functools.cache
def _validator():
    """Built once: ``jsonschema.validate`` checks the schema itself on every call (~30 ms)."""
    return jsonschema.Draft202012Validator(SCHEMA)


def record_problem(record: dict) -> str | None:
    """The first way ``record`` breaks ``SCHEMA`` or its own arithmetic; ``None`` if none."""
    try:
        _compiled()(record)
    except fastjsonschema.JsonSchemaValueException:  # the fast check failed: say why
        error = jsonschema.exceptions.best_match(_validator().iter_errors(record))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "record"
            return f"{where}: {error.message}"
    frames = record["last_frame"] - record["first_frame"] + 1
    if record["frames_total"] != frames:
        return f"frames_total {record['frames_total']} but frames {frames}"
    if len(record.get("skip_reasons", record["skipped_ranges"])) != len(record["skipped_ranges"]):
        return "skip_reasons and skipped_ranges differ in length: one reason per range"
    if sum(record["frame_status"].values()) != frames * len(record["objects"]):
        return f"frame_status {record['frame_status']} does not add up to the slots"
    return None


def check_record(record: dict) -> dict:
    """Before writing: a record that breaks its schema is a bug in sam2flow, not in input."""
    problem = record_problem(record)
    if problem:
        raise RuntimeError(f"batch record breaks its schema: {problem}")
    return record


def read_record(path: str | Path) -> dict:
    """Read and check a ``memory.json``; a damaged one is a ``UserError`` naming it."""
    try:
        record = json.loads(Path(path).read_text())
        problem = None if isinstance(record, dict) else "not a JSON object"
    except (OSError, ValueError) as exc:
        problem = str(exc)
    problem = problem or record_problem(record)
    if problem:
        raise UserError(
            f"batch record is damaged ({problem})",
            path,
            "segment the batch again: snakemake --cores N --forcerun PATH",
        )
    return record
