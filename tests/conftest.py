"""Shared fixtures: real data (skipped where absent), small synthetic videos, the real model."""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the clone; SAM2FLOW_SHARED_DATA where the suite runs from a copy
# (make mutation runs it from mutants/).
SHARED_DATA = Path(os.environ.get("SAM2FLOW_SHARED_DATA") or ROOT.parent / "shared" / "data")


def shared_file(name: str) -> Path:
    """A file of ../shared/data, or skip: a user's fresh clone does not have it."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (real test data lives in ../shared/data beside the clone)")
    return path


def video_of(path: Path, images, fps: float = 15, codec: str = "mp4v") -> Path:
    """A video of ``images`` (BGR frames of one size), coded with OpenCV's ``codec``."""
    writer = None
    for img in images:
        if writer is None:
            size = (img.shape[1], img.shape[0])
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
        writer.write(img)
    if writer is None:
        raise ValueError(f"no images for {path}")
    writer.release()
    return path


def write_video(
    path: Path, frames: int = 60, width: int = 160, height: int = 120, seed: int = 1
) -> Path:
    """A synthetic video: a bright disc moving across a dark textured floor (``seed``)."""
    rng = np.random.default_rng(seed)
    floor = rng.integers(20, 60, size=(height, width, 3), dtype=np.uint8)

    def frame(f: int) -> np.ndarray:
        img = floor.copy()
        cx = int(width * (0.2 + 0.6 * f / max(frames - 1, 1)))
        cv2.circle(img, (cx, height // 2), max(6, height // 8), (230, 230, 230), -1)
        return img

    return video_of(path, map(frame, range(frames)))


# --- The README's troubleshooting table against the messages the suite meets ---

#: Message cells of troubleshooting rows that some test met during this session.
TROUBLESHOOTING_MET: set[str] = set()


#: Videos ``ffmpeg_video`` made, by ffmpeg's version and arguments: mutmut's children ask
#: for the same ones for every mutant (0.3 to 0.5 s of CPU each).
VIDEO_CACHE = Path(tempfile.gettempdir()) / "sam2flow-test-videos"


def keep_first(part: Path, path: Path) -> None:
    """Move a file just written (``part``) to ``path`` unless another process already put
    one there: the first writer keeps it. Linked, not renamed over, since a hard link to
    a file that is being renamed over fails with ENOENT."""
    with contextlib.suppress(FileExistsError):
        os.link(part, path)
    part.unlink()


@functools.cache
def ffmpeg_version() -> str:
    return subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout


def ffmpeg_video(path, frames: int, *vf: str, size: str = "160x120") -> str:
    """An H.264 video (B-frames, a keyframe every 250 frames) made with ffmpeg, or a copy
    of the one it made before with the same arguments (``VIDEO_CACHE``)."""
    args = ["-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"]
    args += ["-frames:v", str(frames), *vf, "-c:v", "libx264", "-bf", "3", "-g", "250"]
    args += ["-pix_fmt", "yuv420p"]
    key = hashlib.sha256(json.dumps([ffmpeg_version(), args]).encode()).hexdigest()[:20]
    made = VIDEO_CACHE / f"{key}{Path(path).suffix}"
    if not made.is_file():
        VIDEO_CACHE.mkdir(exist_ok=True)
        part = made.with_name(f"{key}.{os.getpid()}.part{made.suffix}")
        subprocess.run(["ffmpeg", *args, "-y", str(part)], check=True)
        keep_first(part, made)  # another process asking for it meanwhile made the same
    shutil.copyfile(made, path)  # a copy: tests change their video
    return str(path)


def message_pattern(template: str) -> re.Pattern:
    """A troubleshooting template as a regex: ``...`` and words in capitals (``PATH``,
    ``N``, ``DEVICE``) stand for any text.

    >>> bool(message_pattern("video not found: PATH").search("error: video not found: /a.mp4"))
    True
    """
    parts = re.split(r"(\.\.\.|\b[A-Z]+\b)", template)
    return re.compile("".join(".+?" if i % 2 else re.escape(p) for i, p in enumerate(parts)))


@functools.cache
def troubleshooting_rows() -> dict[str, list[re.Pattern]]:
    """``{message cell: its patterns}`` of the README's troubleshooting rows that name a
    message (their first cell starts with one in backticks; others describe a situation)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cell = line.split(" | ")[0].removeprefix("| ").strip()
        if line.startswith("| `"):
            rows[cell] = [message_pattern(t) for t in re.findall(r"`([^`]+)`", cell)]
    return rows


def listed_in_troubleshooting(message: str) -> str:
    """The README troubleshooting row that explains ``message`` (an error line a test met);
    the test fails when there is none. The row is counted as met for this session."""
    for cell, patterns in troubleshooting_rows().items():
        if any(p.search(message) for p in patterns):
            TROUBLESHOOTING_MET.add(cell)
            return cell
    pytest.fail(f"no row of the README's troubleshooting table explains: {message}")


def pytest_collection_finish(session):
    """What collection imported (torch, sam2, the test modules) lives as long as the
    session: frozen, it is left out of every later garbage collection, the guard's cleanup
    after an OOM and pytest's own at exit (in a forked mutmut child, 0.45 s of the 0.7 s
    pytest took for one fast test)."""
    gc.freeze()


#: Under a mutant: each test's time limit (``hang_limit``), by node id.
HANG_LIMITS: dict[str, float] = {}


def pytest_collection_modifyitems(config, items):
    """The check that every troubleshooting row was met runs after the tests that meet them.
    Under mutmut, a mutant's fastest tests run first (see ``fastest_first``), each within
    its ``hang_limit``."""
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    stats = Path("mutmut-stats.json")
    if mutant and stats.is_file():
        took = json.loads(stats.read_text())["duration_by_test"]
        items[:] = fastest_first(items, took)
        if "__mutmut_" in mutant:  # not mutmut's own runs (stats, clean, forced fail)
            HANG_LIMITS.update(
                {i.nodeid: hang_limit(took[i.nodeid]) for i in items if i.nodeid in took}
            )
    last = [i for i in items if i.name == "test_every_troubleshooting_message_is_met_by_a_test"]
    items[:] = [i for i in items if i not in last] + last


def fastest_first(items: list, took: dict[str, float]) -> list:
    """``items`` with the fastest test files first and, within a file, the fastest tests
    first, by the durations mutmut recorded (``took``). mutmut stops at a mutant's first
    failing test (``-x``) but hands over its tests unordered, so a killed mutant could pay
    for the slow ones first. Files stay whole, so a module fixture is set up once.

    >>> class Item:
    ...     def __init__(self, nodeid): self.nodeid = nodeid
    >>> took = {"a.py::slow": 9.0, "a.py::fast": 0.1, "b.py::one": 2.0}
    >>> [i.nodeid for i in fastest_first([Item("a.py::slow"), Item("a.py::fast"),
    ...                                   Item("b.py::one")], took)]
    ['b.py::one', 'a.py::fast', 'a.py::slow']
    """
    per_file: dict[str, float] = {}
    for item in items:
        name = item.nodeid.split("::")[0]
        per_file[name] = per_file.get(name, 0.0) + took.get(item.nodeid, 0.0)

    def cost(item) -> tuple:
        name = item.nodeid.split("::")[0]
        return per_file[name], name, took.get(item.nodeid, 0.0)

    return sorted(items, key=cost)


def hang_limit(clean_seconds: float) -> float:
    """A mutant that makes a test use 5x its clean time in CPU, plus 1 s, has made it hang:
    the test fails then. CPU time, not the clock's: a child that waits for a core on a busy
    machine has not hung. mutmut's own timeout (3x the clean time of all the mutant's tests,
    plus 3 s) stays as the backstop for a hang that does not spin or that is in C code,
    where no signal is handled.

    >>> hang_limit(0.02), hang_limit(2.0)
    (1.1, 11.0)
    """
    return 1.0 + 5.0 * clean_seconds


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Fail a test that spins past its ``HANG_LIMITS`` entry (set only under a mutant)."""
    limit = HANG_LIMITS.get(item.nodeid)
    if limit is None:
        yield
        return

    def hung(signum, frame):
        pytest.fail(f"hung: {limit:.1f} s of CPU and still running (5x its clean time + 1 s)")

    previous = signal.signal(signal.SIGPROF, hung)
    signal.setitimer(signal.ITIMER_PROF, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def cut_video(source: Path, dest: Path, frames: int) -> Path:
    """The first ``frames`` frames of a real video, re-encoded with ffmpeg (H.264)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(source), "-frames:v", str(frames)]
        + ["-c:v", "libx264", str(dest)],
        check=True,
    )
    return dest


#: A DeepLabCut scorer name as DeepLabCut writes it into its output files' names.
SCORER = "DLC_resnet50_openfieldOct30shuffle1_1030000"


def dlc_predictions(folder: Path, stem: str, frames: int) -> None:
    """A DeepLabCut prediction file pair (CSV and its HDF5 twin) named as DeepLabCut names
    them, with the first labelled pose of the shared label file on every frame."""
    labels = pd.read_csv(shared_file("CollectedData_Pranav.csv"), header=[0, 1, 2], index_col=0)
    pose = labels.iloc[0].to_numpy(dtype=float).reshape(-1, 2)
    parts = labels.columns.get_level_values(1)[::2]
    columns = pd.MultiIndex.from_tuples(
        [(SCORER, b, c) for b in parts for c in ("x", "y", "likelihood")],
        names=["scorer", "bodyparts", "coords"],
    )
    row = np.concatenate([np.append(xy, 0.95) for xy in pose])
    table = pd.DataFrame(np.tile(row, (frames, 1)), columns=columns)
    table.to_csv(folder / f"{stem}{SCORER}.csv")
    table.to_hdf(folder / f"{stem}{SCORER}.h5", key="df_with_missing")


SAM2FLOW = str(Path(sys.executable).with_name("sam2flow"))


def sam2flow(*args, check=True):
    """Run the ``sam2flow`` command line; with ``check``, it must succeed."""
    out = subprocess.run([SAM2FLOW, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture(autouse=True)
def _no_injected_oom(monkeypatch):
    """Tests set SAM2FLOW_INJECT_OOM themselves; none inherits it."""
    monkeypatch.delenv("SAM2FLOW_INJECT_OOM", raising=False)
    os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(autouse=True)
def _no_slurm_controller(request, monkeypatch):
    """Outside the cluster tests, SLURM's tools read an empty config and fail at once.

    Every Snakemake start imports the SLURM executor plugin, which asks the controller for
    its config (``scontrol show config``). Where SLURM's tools are installed but no
    controller runs (this machine and CI during ``make test``), scontrol retries for 9 s,
    up to the plugin's 10 s limit, and the plugin gets ``None``. These tests run Snakemake
    locally, where that answer changes nothing but time; with ``SLURM_CONF=/dev/null``
    scontrol gives it in 3 ms."""
    if not request.node.get_closest_marker("slurm"):
        monkeypatch.setenv("SLURM_CONF", "/dev/null")


@pytest.fixture(scope="session", autouse=True)
def every_record_written_fits_its_schema(tmp_path_factory):
    """After the suite: every memory.json any test (or workflow run) wrote validates."""
    yield
    from sam2flow.record import read_record

    base = tmp_path_factory.getbasetemp()
    records = list(base.rglob("memory.json"))
    problems = []
    for path in records:
        try:
            read_record(path)
        except Exception as exc:  # noqa: BLE001 - list them all
            problems.append(str(exc))
    assert not problems, "\n".join(problems[:10])


@pytest.fixture(scope="session")
def synthetic_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "disc.mp4")


@pytest.fixture(scope="session")
def synthetic_frames(tmp_path_factory, synthetic_video) -> Path:
    """The synthetic video extracted into one 60-frame batch; returns the batch folder."""
    from sam2flow.extract import extract_batches

    out = tmp_path_factory.mktemp("frames")
    extract_batches(synthetic_video, out, batch_size=60)
    return out / "0000"


def stock_sam2(predictor, folder, frame, points=None, box=None):
    """Stock SAM 2 through its own public API only: ``init_state`` on a JPEG folder, one
    prompt (object 1) on ``frame``, propagation forward then backward. Returns bool masks,
    frames x H x W."""
    import torch

    with torch.inference_mode():
        state = predictor.init_state(str(folder))
        labels = None if points is None else np.ones(len(points), dtype=np.int32)
        predictor.add_new_points_or_box(state, frame, 1, points=points, labels=labels, box=box)
        masks = {}
        for reverse in (False, True):
            for idx, _, logits in predictor.propagate_in_video(state, reverse=reverse):
                masks[idx] = (logits[0, 0] > 0).cpu().numpy()
    return np.stack([masks[i] for i in sorted(masks)])


def sam2flow_masks(model, folder, out, frame, points=None, box=None, decoder="sam2"):
    """sam2flow's masks for object 1 of one batch folder (frames x H x W), prompted the
    way ``stock_sam2`` is."""
    from sam2flow.memory import GuardConfig, MemoryGuard
    from sam2flow.outputs import load_masks
    from sam2flow.prompts import BatchPrompt, ObjectPrompt
    from sam2flow.segment import BatchJob, segment_batch

    obj = ObjectPrompt(points=points, box=box)
    if points is not None:
        obj.labels = np.ones(len(points), dtype=np.int32)
    guard = MemoryGuard(GuardConfig(adaptive_batch_size=False, monitoring=False), model.device)
    job = BatchJob(folder, out, BatchPrompt(frame, {1: obj}), "v", "0000", decoder)
    segment_batch(job, model, guard)
    return load_masks(out / "masks.npz")[2][:, 0]


@pytest.fixture(scope="session")
def tiny_model():
    """The real SAM 2.1 tiny model with random weights at image size 256 on the CPU."""
    return _tiny_model()


@functools.cache
def _tiny_model():
    """Built once per process: mutmut's forked children inherit the one its clean run built
    (1.4 s each otherwise)."""
    from sam2flow.models import ModelOptions, build_model

    return build_model(ModelOptions(weights="random", image_size=256, device="cpu"))


# --- Running the real workflow with Snakemake in a scratch project folder ---


SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

#: Every workflow test: random weights, image size 256, the CPU.
TEST_CONFIG = {
    "model": {"weights": "random", "image_size": 256, "device": "cpu"},
    "resources": {"segment_batch": {"gpu": 0, "threads": 2, "mem_mb": 2000, "runtime": 30}},
}


class Project:
    """A scratch folder with config/ and a sample sheet, where Snakemake runs."""

    def __init__(self, path: Path):
        self.path = path
        (path / "config").mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "config" / "config.yaml", path / "config" / "config.yaml")
        self.config = copy.deepcopy(TEST_CONFIG)

    def sheet(self, rows: list[dict]) -> None:
        cols = ["video", "path", "prompts", "points", "box", "mask", "prompt_frame"]
        lines = ["\t".join(cols)] + ["\t".join(str(r.get(c, "")) for c in cols) for r in rows]
        (self.path / "config" / "videos.tsv").write_text("\n".join(lines) + "\n")

    def use_demo(self, frames: int, batch_size: int) -> None:
        """The embedded demo (DeepLabCut-style predictions, two animals) as the only video."""
        self.config["demo"] = {"frames": frames}
        self.config["batch_size"] = batch_size
        self.sheet(
            [
                {
                    "video": "demo",
                    "path": "resources/demo/demo.mp4",
                    "prompts": "resources/demo/demo_predictions.csv",
                }
            ]
        )

    def command(self, *args, cores: int = 2) -> list[str]:
        """The snakemake command line for this project (writes its test config first)."""
        (self.path / "test.yaml").write_text(yaml.safe_dump(self.config))
        return [
            SNAKEMAKE,
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(self.path),
            "--configfile",
            str(self.path / "config" / "config.yaml"),
            str(self.path / "test.yaml"),
            "--cores",
            str(cores),
            *args,
        ]

    def snakemake(self, *args, env: dict | None = None, check: bool = True):
        cmd = self.command(*args)
        run_env = {k: v for k, v in os.environ.items() if k != "SAM2FLOW_INJECT_OOM"}
        run_env.update(env or {})
        run_env["TQDM_DISABLE"] = "1"
        out = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=1800)
        out.log = out.stdout + out.stderr
        if check and out.returncode != 0:
            pytest.fail(f"snakemake failed ({out.returncode}):\n{out.log[-6000:]}")
        return out


def jobs_run(log: str, rule: str) -> list[str]:
    """The wildcards of every job of ``rule`` that Snakemake scheduled, from its own log."""
    found = []
    # Jobs of a group job are listed indented under it.
    for block in re.split(r"\n(?=\s*\[|\s*(?:local)?rule |\s*(?:local)?checkpoint )", log):
        if re.match(rf"(local)?(rule|checkpoint) {rule}:", block.strip()):
            match = re.search(r"wildcards: (.*)", block)
            found.append(match.group(1).strip() if match else "")
    return sorted(found)


@pytest.fixture
def project(tmp_path) -> Project:
    return Project(tmp_path / "project")


# --- A real single-node SLURM, started by tests/cluster/slurm.sh ---


@pytest.fixture(scope="session")
def slurm():
    """Start SLURM (installing it from Debian's packages when missing), or skip with why."""
    if os.geteuid() != 0:
        pytest.skip("starting SLURM needs root (tests/cluster/slurm.sh)")
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        pytest.skip("SLURM is not installed and apt-get is not available")
    up = subprocess.run(
        ["bash", str(ROOT / "tests" / "cluster" / "slurm.sh"), "up"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if up.returncode != 0:
        pytest.skip(f"SLURM could not be started: {(up.stderr or up.stdout)[-500:]}")
    yield
    if os.environ.get("SAM2FLOW_KEEP_SLURM") != "1":  # leave nothing running behind
        subprocess.run(
            ["bash", str(ROOT / "tests" / "cluster" / "slurm.sh"), "down"],
            capture_output=True,
            timeout=120,
        )


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support; remembers the Range headers it saw."""

    ranges: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        header = self.headers.get("Range")
        RangeHandler.ranges.append(header)
        if header:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


def checkpoint_model(url: str, sha: str | None = None) -> dict:
    """The config's model section that downloads the tiny model's checkpoint from ``url``."""
    return {
        "weights": "checkpoint",
        "checkpoint": "auto",
        "checkpoint_url": url,
        "checkpoint_sha256": sha,
        "image_size": 256,
        "device": "cpu",
    }


@pytest.fixture(scope="module")
def checkpoint_server(tmp_path_factory, tiny_model):
    """A local server holding a SAM 2-format checkpoint made from a random model."""
    root = tmp_path_factory.mktemp("server")
    import torch

    path = root / "sam2.1_hiera_tiny.pt"
    # Weights unlike the seeded random build: loading the file must show in the masks.
    noise = torch.Generator().manual_seed(1)
    state = {
        k: v + 0.05 * torch.randn(v.shape, generator=noise) if v.is_floating_point() else v
        for k, v in tiny_model.predictor.state_dict().items()
    }
    torch.save({"model": state}, path)
    (root / "not_a_checkpoint.pt").write_bytes(b"hello")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()

    def handler(*args, **kwargs):
        return RangeHandler(*args, directory=str(root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", path, sha
    server.shutdown()
