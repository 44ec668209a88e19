"""memory.json: one schema, checked when written and when read."""

import json

import pytest

from sam2flow.errors import UserError
from sam2flow.memory import GuardConfig, MemoryGuard
from sam2flow.outputs import MaskStore, write_batch_outputs
from sam2flow.record import SCHEMA, read_record
from sam2flow.report import write_summary
from sam2flow.segment import BatchJob, segment_batch


def no_prompt_record(tmp_path, synthetic_frames, tiny_model):
    guard = MemoryGuard(GuardConfig(adaptive_batch_size=False), tiny_model.device)
    job = BatchJob(synthetic_frames, tmp_path / "out", None, "disc", "0000")
    return segment_batch(job, tiny_model, guard)


def test_a_batch_without_a_prompt_has_every_field_a_segmented_one_has(
    tmp_path, synthetic_frames, tiny_model
):
    record = no_prompt_record(tmp_path, synthetic_frames, tiny_model)
    assert set(SCHEMA["required"]) <= set(record)
    assert record["gpu_name"] and record["status_level"] == "healthy"
    assert record["final_chunk_size"] == 0 and record["frame_status"] == {"no_prompt": 60}
    assert read_record(tmp_path / "out" / "memory.json") == record


def test_a_record_that_breaks_the_schema_is_never_written(tmp_path):
    store = MaskStore([0, 1], [1], 4, 4)
    store.mark([0, 1], "no_prompt")
    with pytest.raises(RuntimeError, match="breaks its schema"):
        write_batch_outputs(tmp_path, store, {"status": "fine"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda r: r.pop("frame_status"), "frame_status"),
        (lambda r: r.update(status="done"), "status"),
        (lambda r: r.update(frame_status={"no_prompt": 59}), "add up"),
        (lambda r: r.update(last_frame=70), "frames_total"),
    ],
)
def test_the_summary_refuses_a_damaged_record_naming_it(
    tmp_path, synthetic_frames, tiny_model, change, problem
):
    record = no_prompt_record(tmp_path, synthetic_frames, tiny_model)
    change(record)
    path = tmp_path / "damaged" / "memory.json"
    path.parent.mkdir()
    path.write_text(json.dumps(record))
    with pytest.raises(UserError, match=problem) as info:
        write_summary([path], tmp_path / "s.csv", tmp_path / "s.html", tmp_path / "s.tsv")
    assert str(path) in str(info.value)
    path.unlink()  # the suite checks every memory.json left behind


def test_a_truncated_record_is_a_one_line_error(tmp_path):
    path = tmp_path / "memory.json"
    path.write_text('{"status": "ok", "fra')
    with pytest.raises(UserError, match="damaged") as info:
        read_record(path)
    assert "\n" not in str(info.value)
    path.unlink()
