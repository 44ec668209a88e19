"""The memory estimate's cost model, term by term, through the estimates it gives: how each
term grows with frames, objects, image size, model, offload and device."""

from __future__ import annotations

import math

import pytest

from sam2flow.memory.estimate import (
    CALIBRATION,
    MIB,
    STATE_WINDOW,
    check_host_memory,
    estimate,
    estimate_host,
    frame_bytes,
    largest_batch_that_fits,
    size_name,
    state_bytes_per_frame,
)

TINY = 38.9e6 * 4  # bytes of the tiny model's float32 weights


@pytest.mark.parametrize(
    "model, size",
    [
        ("sam2.1_hiera_tiny", "tiny"),
        ("sam2_hiera_small", "small"),
        ("sam2.1_hiera_base_plus", "base_plus"),
        ("sam2.1_hiera_large", "large"),
        ("base_plus", "base_plus"),
        ("my_finetuned_model", "large"),  # unknown: the safe side
    ],
)
def test_size_names(model, size):
    assert size_name(model) == size


def test_a_frame_and_a_frames_state_in_bytes():
    assert frame_bytes(1024) == 3 * 1024 * 1024 * 4
    assert frame_bytes(256) == 3 * 256 * 256 * 4
    # memory features 64 x 64 x 64 in bf16, masks 256 x 256 fp32, a 256-float pointer
    assert state_bytes_per_frame(1024) == 64 * 64 * 64 * 2 + 256 * 256 * 4 + 256 * 4


def test_one_frame_on_a_gpu_is_weights_activations_the_frame_and_its_state():
    expected = TINY + CALIBRATION["activation_bytes_1024"]["cuda"]
    expected += frame_bytes(1024) + state_bytes_per_frame(1024)
    assert estimate(1, 480, 640) == int(expected)


def test_activations_scale_with_the_image_area_and_a_quarter_per_extra_object():
    act = CALIBRATION["activation_bytes_1024"]["cuda"]
    small = estimate(1, 480, 640, image_size=512)
    assert small == int(TINY + act / 4 + frame_bytes(512) + state_bytes_per_frame(512))
    two = estimate(1, 480, 640, objects=2) - estimate(1, 480, 640)
    assert two == int(0.25 * act + state_bytes_per_frame(1024))


def test_a_bounded_job_stops_growing_after_its_windows_and_stock_grows_every_frame():
    window = STATE_WINDOW + 1
    assert estimate(window, 480, 640) == estimate(10_000, 480, 640)
    assert estimate(window - 1, 480, 640) < estimate(window, 480, 640)
    step = estimate(401, 480, 640, bounded=False) - estimate(400, 480, 640, bounded=False)
    assert step == frame_bytes(1024) + state_bytes_per_frame(1024)
    three = estimate(401, 480, 640, objects=3, bounded=False)
    assert three - estimate(400, 480, 640, objects=3, bounded=False) == (
        frame_bytes(1024) + 3 * state_bytes_per_frame(1024)
    )


def test_offload_on_a_gpu_keeps_no_frames_and_a_quarter_of_the_state_window():
    act = CALIBRATION["activation_bytes_1024"]["cuda"]
    state = STATE_WINDOW * 2 * state_bytes_per_frame(1024) // 4
    expected = TINY + act * 1.25 + state
    assert estimate(5000, 480, 640, objects=2, offload=True) == int(expected)
    assert estimate(5000, 480, 640, offload=True, bounded=False) < estimate(5000, 480, 640)


def test_on_the_cpu_the_runtime_and_the_packed_masks_count_and_offload_changes_nothing():
    cpu = estimate(100, 480, 640, device="cpu")
    act = CALIBRATION["activation_bytes_1024"]["cpu"]
    frames = 8 * frame_bytes(1024)  # the read-ahead window
    state = (STATE_WINDOW + 1) * state_bytes_per_frame(1024)
    masks = 100 * math.ceil(480 * 640 / 8)
    assert cpu == int(TINY + act + frames + state + CALIBRATION["cpu_runtime_bytes"] + masks)
    assert estimate(100, 480, 640, device="cpu", offload=True) == cpu
    grown = estimate(1100, 480, 640, objects=2, device="cpu")
    assert grown - estimate(100, 480, 640, objects=2, device="cpu") == 1000 * 2 * 38400


def test_a_larger_model_costs_its_weights():
    large = estimate(1, 480, 640, model="sam2.1_hiera_large")
    assert large - estimate(1, 480, 640) == int(224.4e6 * 4 - TINY)


@pytest.mark.parametrize(
    "args",
    [(0, 480, 640), (1, 0, 640), (1, 480, 0), (1, 480, 640, 0), (1, 480, 640, 1, "x", 15)],
)
def test_sizes_below_one_or_an_image_under_16_are_refused(args):
    with pytest.raises(ValueError, match="must be >= 1"):
        estimate(*args)


def test_the_smallest_valid_job():
    assert estimate(1, 1, 1, 1, image_size=16) > 0


def test_largest_batch_is_the_last_length_that_fits():
    kw = dict(image_size=256, device="cpu", bounded=False)
    for n in (1, 37, 400):
        need = estimate(n, 480, 640, **kw)
        assert largest_batch_that_fits(need, 480, 640, **kw) == n
        assert largest_batch_that_fits(need - 1, 480, 640, **kw) == n - 1


def test_largest_batch_when_nothing_or_everything_fits():
    assert largest_batch_that_fits(estimate(1, 480, 640) - 1, 480, 640) == 0
    everything = estimate(STATE_WINDOW + 1, 480, 640)  # a bounded job's flat peak
    assert largest_batch_that_fits(everything, 480, 640) == 10_000_000
    assert largest_batch_that_fits(everything - 1, 480, 640) == STATE_WINDOW


def test_host_memory_on_a_gpu_is_runtime_weights_and_packed_masks():
    host = estimate_host(1000, 480, 640, objects=2)
    assert host == int(CALIBRATION["cpu_runtime_bytes"] + TINY + 1000 * 2 * 38400)
    assert estimate_host(1000, 480, 640, objects=2, device="cpu") == estimate(
        1000, 480, 640, 2, device="cpu"
    )
    large = estimate_host(1, 480, 640, model="sam2.1_hiera_large", image_size=512)
    assert large == int(CALIBRATION["cpu_runtime_bytes"] + 224.4e6 * 4 + 38400)


def test_host_memory_on_the_cpu_is_the_whole_estimate_at_that_image_size():
    on_cpu = estimate_host(100, 480, 640, 2, "sam2.1_hiera_small", 512, device="cpu")
    assert on_cpu == estimate(100, 480, 640, 2, "sam2.1_hiera_small", 512, device="cpu")
    assert on_cpu != estimate(100, 480, 640, 2, "sam2.1_hiera_small", device="cpu")


def test_a_job_given_just_enough_host_memory_runs_and_one_byte_less_fails():
    check_host_memory(1500 * MIB, mem_mb=1500)
    check_host_memory(10**12, mem_mb=None)
    check_host_memory(10**12, mem_mb=0)
    with pytest.raises(MemoryError, match=r"batch 7 needs about 1500 MiB .* mem_mb=1499"):
        check_host_memory(1500 * MIB, mem_mb=1499, what="batch 7")


def test_a_frames_state_is_whole_bytes_at_any_image_size():
    # 1000 is no multiple of 16: the feature map is 62 x 62, the mask 250 x 250
    size = state_bytes_per_frame(1000)
    assert size == 64 * 62 * 62 * 2 + 250 * 250 * 4 + 256 * 4 and type(size) is int


def test_a_refused_size_says_what_must_hold():
    with pytest.raises(ValueError) as err:
        estimate(0, 480, 640)
    assert str(err.value) == "frames, height, width, objects must be >= 1 and image_size >= 16"


def test_largest_batch_applies_the_options_to_its_first_frame_too():
    one = estimate(1, 480, 640, image_size=256)  # far under one frame at the default 1024
    assert largest_batch_that_fits(one, 480, 640, image_size=256) == 1


def test_a_job_given_one_mib_is_checked_like_any_other():
    with pytest.raises(MemoryError) as err:
        check_host_memory(2 * MIB, mem_mb=1)
    assert str(err.value) == (
        "job needs about 2 MiB of host memory but was given mem_mb=1; "
        "a retry asks for more (resources grow with the attempt)"
    )
