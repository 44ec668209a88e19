"""The command line: what each subcommand prints, and one-line errors."""

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import sam2flow, write_video


def test_memory_status_prints_a_line_per_device():
    out = sam2flow("memory", "status")
    cpu = [line for line in out.stdout.splitlines() if line.startswith("cpu")]
    assert len(cpu) == 1
    for word in ("used", "free", "total", "fragmentation", "level", "NVML"):
        assert word in cpu[0]


def test_memory_status_json():
    rows = json.loads(sam2flow("memory", "status", "--json").stdout)
    assert rows[-1]["device"] == "cpu" and rows[-1]["total"] > 0
    assert {"level", "nvml_available", "free", "used"} <= set(rows[-1])


def test_memory_plan_prints_the_estimate_and_what_fits():
    base = ["memory", "plan", "--frames", 400, "--height", 480, "--width", 640, "--budget-gb", 4]
    ours = sam2flow(*base).stdout
    assert "estimate:" in ours and "fits any batch length" in ours
    stock = sam2flow(*base, "--stock").stdout
    assert "largest batch that fits is" in stock
    assert int(stock.split("fits is ")[1].split()[0]) < 400


def test_extract_prints_frames_and_batches(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=25)
    out = sam2flow("extract", "--video", video, "--out", tmp_path / "f", "--batch-size", 10)
    assert "25 frames in 3 batches" in out.stdout


def test_user_errors_are_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_text("not a video")
    out = sam2flow("extract", "--video", bad, "--out", tmp_path / "f", check=False)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "clip.mp4" in out.stderr
    assert "Traceback" not in out.stderr


def test_invalid_threshold_is_a_one_line_error(tmp_path, synthetic_frames):
    out = sam2flow(
        "segment",
        "--frames",
        synthetic_frames,
        "--out",
        tmp_path / "o",
        "--point",
        "1,1",
        "--weights",
        "random",
        "--memory-threshold",
        "1.5",
        check=False,
    )
    assert out.returncode == 2
    assert (
        "--memory-threshold (config memory.memory_threshold): 1.5 is greater than the "
        in out.stderr
    )


def test_segment_command_writes_the_batch_outputs(tmp_path, synthetic_frames):
    out = sam2flow(
        "segment",
        "--frames",
        synthetic_frames,
        "--out",
        tmp_path / "o",
        "--point",
        "40,60",
        "--weights",
        "random",
        "--image-size",
        256,
        "--device",
        "cpu",
        "--sizing-file",
        tmp_path / "sizes.json",
    )
    assert "batch ok: 60 frames" in out.stdout
    assert {p.name for p in (tmp_path / "o").iterdir()} == {
        "masks.npz",
        "frames.csv",
        "memory.json",
    }


@pytest.mark.slow
def test_estimate_is_within_20_percent_of_the_measured_peak(tmp_path, synthetic_frames):
    code = textwrap.dedent(
        """
        import resource, sys
        from sam2flow.cli import main
        main(sys.argv[1:])
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        """
    )
    args = [
        "segment",
        "--frames",
        str(synthetic_frames),
        "--out",
        str(tmp_path / "o"),
        "--point",
        "40,60",
        "--weights",
        "random",
        "--image-size",
        "256",
        "--device",
        "cpu",
        "--disable-adaptive-batch-size",
    ]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    measured = int(out.stdout.strip().splitlines()[-1])
    from sam2flow.memory import estimate

    predicted = estimate(60, 120, 160, image_size=256, device="cpu")
    assert abs(predicted - measured) / measured < 0.20, (predicted, measured)


def test_a_bug_keeps_its_traceback_and_a_bad_value_is_one_line(monkeypatch, capsys):
    """Only errors about what the user gave become one line: a ValueError from a bug is
    not hidden behind 'error:' (it would read as the user's fault)."""
    import pytest

    from sam2flow import cli
    from sam2flow.errors import BadValue

    def bug(args):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setitem(cli._COMMANDS, "summary", bug)
    with pytest.raises(ValueError, match="broadcast"):
        cli.main(["summary", "--records", "r.json", "--out", "o"])

    def bad(args):
        raise BadValue("points 'x' must be numbers")

    monkeypatch.setitem(cli._COMMANDS, "summary", bad)
    assert cli.main(["summary", "--records", "r.json", "--out", "o"]) == 2
    assert capsys.readouterr().err == "sam2flow summary: error: points 'x' must be numbers\n"
