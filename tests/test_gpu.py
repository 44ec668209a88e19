"""GPU checks (marker gpu): run where CUDA is available, skipped elsewhere."""

import pytest
import torch

from sam2flow.frames import extract_batches
from sam2flow.memory import GuardConfig, MemoryGuard, estimate
from sam2flow.prompts import manual_prompt
from sam2flow.segment import BatchJob, segment_batch

from conftest import shared_file

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def gpu_model():
    from sam2flow.models import build_model

    return build_model("sam2.1_hiera_tiny", "random", image_size=1024, device="cuda")


@pytest.fixture(scope="module")
def bedroom_batch(tmp_path_factory):
    out = tmp_path_factory.mktemp("bedroom")
    extract_batches(shared_file("bedroom.mp4"), out, batch_size=200)
    return out / "0000"


def run(model, frames, out, **options):
    guard = MemoryGuard(GuardConfig(adaptive_batch_size=False, **options), model.device)
    job = BatchJob(frames, out, manual_prompt(0, "210,350"), "bedroom", "0000")
    return segment_batch(job, model, guard)


def test_cap_holds_and_every_frame_is_segmented(gpu_model, bedroom_batch, tmp_path):
    record = run(gpu_model, bedroom_batch, tmp_path / "out", max_gpu_memory_gb=4)
    assert record["memory_cap_bytes"] <= 4 * 1024**3
    assert record["status"] in ("ok", "recovered")
    assert record["peak_allocated_bytes"] <= record["memory_cap_bytes"]
    assert "skipped_oom" not in record["frame_status"]


def test_injected_oom_on_the_gpu_is_rescued_by_chunking(
    gpu_model, bedroom_batch, tmp_path, monkeypatch
):
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=100")
    record = run(gpu_model, bedroom_batch, tmp_path / "out", max_gpu_memory_gb=4)
    assert record["status"] == "recovered"
    assert "skipped_oom" not in record["frame_status"]


def test_estimate_is_within_20_percent_of_the_torch_peak(gpu_model, bedroom_batch, tmp_path):
    torch.cuda.reset_peak_memory_stats()
    record = run(gpu_model, bedroom_batch, tmp_path / "out")
    measured = record["peak_allocated_bytes"]
    predicted = estimate(200, 540, 960, image_size=1024, device="cuda")
    assert abs(predicted - measured) / measured < 0.20, (predicted, measured)
