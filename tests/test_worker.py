"""A group's batches in one worker process: the model built once, and each batch's
outputs, record, log lines and errors as if its own process had segmented it."""

import json
import logging
import os
import signal
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from sam2flow.errors import UserError
from sam2flow.extract import extract_batches
from sam2flow.memory import GuardConfig
from sam2flow.models import ModelOptions
from sam2flow.prompts import PromptOptions
from sam2flow.segment import segment_folder
from sam2flow.worker import segment_in_worker, worker_address

from conftest import listed_in_troubleshooting

MODEL = ModelOptions(weights="random", image_size=64, device="cpu")
QUIET = GuardConfig(monitoring=False, adaptive_batch_size=False)
#: What differs between two runs of one batch: time, and memory measured in a process
#: whose history differs.
VOLATILE = {"seconds", "frames_per_second", "host_peak_rss_bytes", "snapshots", "attempts"}


@pytest.fixture(scope="module")
def batches(tmp_path_factory, synthetic_video):
    root = tmp_path_factory.mktemp("group")
    extract_batches(synthetic_video, root, batch_size=10)
    return root


def call(batches, name, out, **extra):
    return (
        dict(
            frames_dir=batches / name,
            out_dir=out / name,
            prompt=PromptOptions(points="40,60"),
            model=MODEL,
            memory=QUIET,
            video="v",
            batch=name,
            threads=1,
        )
        | extra
    )


def worker_pid(message: str) -> int:
    """The worker's pid that a job's log line names."""
    return int(message.split("pid ")[1].split(")")[0])


def use_tmpdir(monkeypatch, folder) -> None:
    """``TMPDIR`` set to ``folder``, and read again by ``tempfile``."""
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr("tempfile.tempdir", None)


def steady(record: dict) -> dict:
    attempts = [{k: a[k] for k in ("level", "chunk_size", "outcome")} for a in record["attempts"]]
    return {k: v for k, v in record.items() if k not in VOLATILE} | {"attempts": attempts}


def test_a_group_of_three_builds_the_model_once_and_writes_what_three_jobs_write(
    batches, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    address = worker_address("segment_v_0000", MODEL, tmp_path)
    names = ["0000", "0001", "0002"]
    grouped = [segment_in_worker(address, 30, **call(batches, n, tmp_path / "w")) for n in names]
    said = [m for m in caplog.messages if m.startswith("segmented in the group's worker")]
    assert [m.split(": ", 1)[1] for m in said] == [
        f"its batch {i}, the model built 1 time(s) there" for i in (1, 2, 3)
    ]
    assert len({worker_pid(m) for m in said}) == 1  # one process
    for name, record in zip(names, grouped, strict=True):
        alone = segment_folder(**call(batches, name, tmp_path / "alone"))
        assert steady(record) == steady(alone)
        assert json.loads((tmp_path / "w" / name / "memory.json").read_text())["batch"] == name
        for file in ("masks.npz", "frames.csv"):
            assert (tmp_path / "w" / name / file).read_bytes() == (
                tmp_path / "alone" / name / file
            ).read_bytes()


def test_the_workers_log_lines_are_the_jobs(batches, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    address = worker_address("logs", MODEL, tmp_path)
    segment_in_worker(address, 30, **call(batches, "0001", tmp_path))
    mine = [r for r in caplog.records if r.name.startswith("sam2flow.segment")]
    assert any("batch 0001" in r.getMessage() for r in mine), caplog.messages


def test_a_batchs_error_is_its_jobs_and_the_worker_serves_the_next(batches, tmp_path):
    address = worker_address("errors", MODEL, tmp_path)
    with pytest.raises(UserError) as remote:
        segment_in_worker(address, 30, **call(batches, "0009", tmp_path))
    with pytest.raises(UserError) as local:
        segment_folder(**call(batches, "0009", tmp_path))
    assert str(remote.value) == str(local.value)
    assert segment_in_worker(address, 30, **call(batches, "0000", tmp_path))["status"] == "ok"


def test_the_jobs_oom_hook_reaches_the_worker_and_leaves_with_its_batch(
    batches, tmp_path, monkeypatch
):
    address = worker_address("hook", MODEL, tmp_path)
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=5")
    memory = GuardConfig(monitoring=False, adaptive_batch_size=False, min_chunk=5)
    hooked = segment_in_worker(address, 30, **call(batches, "0000", tmp_path, memory=memory))
    assert hooked["status"] == "recovered"
    monkeypatch.delenv("SAM2FLOW_INJECT_OOM")
    plain = segment_in_worker(address, 30, **call(batches, "0001", tmp_path, memory=memory))
    assert plain["status"] == "ok"


def test_a_worker_that_was_killed_is_started_again(batches, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    address = worker_address("killed", MODEL, tmp_path)
    segment_in_worker(address, 30, **call(batches, "0000", tmp_path))
    first = worker_pid(caplog.messages[-1])
    os.kill(first, signal.SIGKILL)
    process = psutil.Process(first)
    while process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.05)  # the kernel closes its socket as it dies
    segment_in_worker(address, 30, **call(batches, "0001", tmp_path))
    second = worker_pid(caplog.messages[-1])
    assert second != first


def test_a_worker_that_ends_while_it_holds_the_batch_fails_the_job_as_out_of_memory(tmp_path):
    """A stand-in worker that takes the job, then ends: the job learns it as a worker
    lost mid-batch (exit 3, so the retry asks for more memory)."""
    import socket
    import threading
    from multiprocessing.connection import Connection

    from sam2flow import worker

    address = worker_address("lost", MODEL, tmp_path)
    worker._private_folder(address.parent)
    address.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(address))
    listener.listen()

    def take_and_die():
        sock, _ = listener.accept()
        conn = Connection(sock.detach())
        conn.send(worker.HELLO)
        conn.recv()
        conn.close()

    thread = threading.Thread(target=take_and_die)
    thread.start()
    with pytest.raises(MemoryError) as info:
        segment_in_worker(address, 30, **call(tmp_path, "0000", tmp_path))
    thread.join()
    listener.close()
    address.unlink()
    message = str(info.value)
    assert message == (
        "the group's worker ended while segmenting (EOFError); out of host memory? "
        f"(its log: {address}.log)"
    )
    listed_in_troubleshooting(message)


def test_a_worker_that_cannot_listen_fails_the_job_at_once_with_its_error(tmp_path):
    folder = tmp_path / ("x" * 120)  # longer than a Unix socket's path may be
    folder.mkdir(mode=0o700)
    address = folder / "w.sock"
    started = time.monotonic()
    with pytest.raises(UserError) as info:
        segment_in_worker(address, 5, **call(tmp_path, "0000", tmp_path))
    assert time.monotonic() - started < 60  # not START_SECONDS (120) of waiting
    message = str(info.value)
    assert message.startswith("the group's worker did not start (it ended with exit 1: ")
    assert "AF_UNIX path too long" in message
    assert message.endswith(
        f": {address}.log: read its log; or set group_process: false to "
        "segment each batch in its own process"
    )
    listed_in_troubleshooting(message)


def test_a_worker_that_never_listens_is_given_up_after_start_seconds(tmp_path, monkeypatch):
    """A worker stuck before it listens (here its import hangs): the job waits
    START_SECONDS, not for ever."""
    from sam2flow import worker

    stuck = tmp_path / "stuck" / "sam2flow"
    stuck.mkdir(parents=True)
    (stuck / "__init__.py").write_text("")
    (stuck / "worker.py").write_text("import time\ntime.sleep(10)\n")
    monkeypatch.setenv("PYTHONPATH", str(stuck.parent))
    monkeypatch.setattr(worker, "START_SECONDS", 3)
    address = worker_address("stuck", MODEL, tmp_path)
    with pytest.raises(UserError) as info:
        segment_in_worker(address, 5, **call(tmp_path, "0000", tmp_path))
    assert str(info.value).startswith(
        f"the group's worker did not start (not listening after 3 s): {address}.log: "
    )
    listed_in_troubleshooting(str(info.value))


def test_a_deep_temporary_folder_puts_the_socket_in_tmp(batches, tmp_path, monkeypatch):
    """A cluster's per-job TMPDIR can be too deep for a socket's path (107 bytes)."""
    deep = tmp_path / ("t" * 100)
    deep.mkdir()
    use_tmpdir(monkeypatch, deep)
    address = worker_address("deep", MODEL, tmp_path)
    assert address.parent.parent == Path("/tmp") and len(bytes(address)) <= 107
    record = segment_in_worker(address, 5, last=True, **call(batches, "0000", tmp_path))
    assert record["status"] == "ok"
    use_tmpdir(monkeypatch, tmp_path)
    assert worker_address("deep", MODEL, tmp_path).parent.parent == tmp_path  # it fits


def test_a_socket_folder_open_to_others_is_refused(tmp_path):
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o755)
    with pytest.raises(UserError) as info:
        segment_in_worker(folder / "w.sock", 5, **call(tmp_path, "0000", tmp_path))
    assert str(info.value) == (
        f"the worker folder belongs to someone else or is open to others: {folder}: "
        "remove it, or set TMPDIR to a folder of your own"
    )
    listed_in_troubleshooting(str(info.value))


def test_only_grouped_batches_go_to_a_worker_one_per_group_and_cluster_job(batches, monkeypatch):
    from sam2flow.worker import group_worker

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert group_worker(batches, "v", "0001", 1, MODEL) is None
    assert group_worker(batches, "v", "0001", 2, MODEL, group_process=False) is None
    first, second, third = (
        group_worker(batches, "v", b, 2, MODEL) for b in ("0000", "0001", "0002")
    )
    assert first.address == second.address != third.address  # groups 0000-0001 and 0002
    assert (first.last, second.last) == (False, True)
    assert group_worker(batches, "w", "0000", 2, MODEL).address != first.address  # video
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    assert group_worker(batches, "v", "0000", 2, MODEL).address != first.address  # job


def test_the_worker_ends_after_its_groups_last_batch(batches, tmp_path, caplog):
    """It gives back the model's memory at once, not after its idle time (here 300 s)."""
    caplog.set_level(logging.INFO)
    address = worker_address("last", MODEL, tmp_path)
    segment_in_worker(address, 300, **call(batches, "0000", tmp_path))
    segment_in_worker(address, 300, last=True, **call(batches, "0001", tmp_path))
    pids = {worker_pid(m) for m in caplog.messages if "pid " in m}
    assert len(pids) == 1
    process = psutil.Process(pids.pop())
    assert process.wait(timeout=30) == 0
    assert not address.exists()


# The worker's side in a thread of this process, where mutation testing reaches it (a
# worker process imports the package unmutated).


@pytest.fixture
def serving(tmp_path):
    """Start ``serve`` in a thread; yields a function that starts it and returns its
    address and a way to wait for how many batches it served."""
    import threading

    from sam2flow import worker

    threads = []

    def start(name: str, idle: float):
        address = worker_address(name, MODEL, tmp_path)
        worker._private_folder(address.parent)
        address.unlink(missing_ok=True)
        served = []
        thread = threading.Thread(target=lambda: served.append(worker.serve(address, idle)))
        thread.start()
        threads.append(thread)
        while not address.exists() and thread.is_alive():
            time.sleep(0.01)

        def wait(timeout: float) -> int | None:
            thread.join(timeout)
            return served[0] if served else None

        return address, wait

    yield start
    for thread in threads:
        thread.join(30)


def test_a_worker_serves_the_group_until_its_last_batch_then_leaves_no_socket(
    batches, tmp_path, serving
):
    address, wait = serving("until-last", idle=60)
    first = segment_in_worker(address, **call(batches, "0000", tmp_path))
    assert first["status"] == "ok" and wait(0.5) is None  # still serving
    segment_in_worker(address, last=True, **call(batches, "0001", tmp_path))
    assert wait(10) == 2
    assert not address.exists()
    assert (tmp_path / "0001" / "memory.json").is_file()


def test_a_batch_stays_in_its_own_process_unless_it_has_a_groups_worker(
    batches, tmp_path, serving, caplog
):
    from sam2flow.worker import GroupWorker, segment_job

    caplog.set_level(logging.INFO)
    alone = segment_job(None, **call(batches, "0000", tmp_path / "alone"))
    assert alone["status"] == "ok"
    assert not [m for m in caplog.messages if "group's worker" in m]
    address, wait = serving("routed", idle=60)
    grouped = segment_job(GroupWorker(address, last=True), **call(batches, "0000", tmp_path))
    assert [m for m in caplog.messages if m.startswith("segmented in the group's worker")]
    assert wait(10) == 1  # the group's last batch: the worker ended after it
    assert steady(grouped) == steady(alone)


def test_a_worker_without_a_batch_ends_after_its_idle_time(tmp_path, serving):
    address, wait = serving("idle", idle=0.3)
    assert wait(10) == 0
    assert not address.exists()


def test_a_batch_runs_with_its_jobs_environment_and_the_workers_own_comes_back(
    batches, tmp_path, monkeypatch
):
    """The OOM hook of the job that started the worker must not reach a later job's batch,
    nor one job's hook outlive its batch."""
    from sam2flow.worker import handle

    memory = GuardConfig(monitoring=False, adaptive_batch_size=False, min_chunk=5)
    monkeypatch.setenv("SAM2FLOW_INJECT_OOM", "above=5")  # the worker's own environment
    plain = handle({"call": call(batches, "0000", tmp_path, memory=memory), "env": {}}, 1)
    assert plain["error"] is None and plain["record"]["status"] == "ok"
    assert os.environ["SAM2FLOW_INJECT_OOM"] == "above=5"
    monkeypatch.delenv("SAM2FLOW_INJECT_OOM")
    hooked = handle(
        {
            "call": call(batches, "0001", tmp_path, memory=memory),
            "env": {"SAM2FLOW_INJECT_OOM": "above=5"},
        },
        2,
    )
    assert hooked["record"]["status"] == "recovered"
    assert "SAM2FLOW_INJECT_OOM" not in os.environ
    assert (plain["served"], hooked["served"], hooked["pid"]) == (1, 2, os.getpid())


def test_each_kind_of_failure_goes_back_as_its_kind(batches, tmp_path):
    from sam2flow.worker import handle

    user = handle({"call": call(batches, "0009", tmp_path), "env": {}}, 1)["error"]
    with pytest.raises(UserError) as local:
        segment_folder(**call(batches, "0009", tmp_path))
    assert user == ("user", str(local.value))
    bug = handle({"call": call(batches, "0000", tmp_path, frames=1), "env": {}}, 2)["error"]
    assert bug[0] == "bug" and "TypeError" in bug[1] and "frames" in bug[1]


def test_a_job_raises_what_its_batch_raised_in_the_worker(batches, tmp_path, serving, monkeypatch):
    """Out of host memory stays a MemoryError (the job's exit 3, a retry with more
    memory); a bug is a RuntimeError carrying the worker's traceback."""
    from sam2flow import segment

    def out_of_memory(**call):
        raise MemoryError("host memory ran out while segmenting on cpu")

    address, wait = serving("kinds", idle=60)
    monkeypatch.setattr(segment, "segment_folder", out_of_memory)
    with pytest.raises(MemoryError, match=r"^host memory ran out while segmenting on cpu$"):
        segment_in_worker(address, **call(batches, "0000", tmp_path))
    monkeypatch.undo()
    with pytest.raises(RuntimeError) as bug:
        segment_in_worker(address, last=True, **call(batches, "0000", tmp_path, frames=1))
    assert str(bug.value).startswith("in the group's worker:\nTraceback")
    assert wait(10) == 2


def test_a_worker_is_one_per_workflow_folder_model_and_visible_gpus(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    here = worker_address("g", MODEL, tmp_path)
    assert worker_address("g", MODEL, tmp_path / ".") == here
    assert worker_address("g", MODEL, tmp_path / "other") != here
    assert worker_address("g", ModelOptions(weights="random", image_size=128), tmp_path) != here
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert worker_address("g", MODEL, tmp_path) != here


def test_a_socket_path_of_exactly_the_limit_stays_in_tmpdir(tmp_path, monkeypatch):
    from sam2flow.worker import SOCKET_PATH_MAX

    monkeypatch.setattr("tempfile.tempdir", None)
    tail = len(bytes(worker_address("g", MODEL, tmp_path))) - len(str(tempfile.gettempdir()))
    for extra, expected in ((0, "deep"), (1, "/tmp")):
        deep = tmp_path / ("t" * (SOCKET_PATH_MAX - tail - len(str(tmp_path)) - 1 + extra))
        deep.mkdir()
        use_tmpdir(monkeypatch, deep)
        address = worker_address("g", MODEL, tmp_path)
        assert address.parent.parent == (deep if expected == "deep" else Path("/tmp"))


def started_workers(address: Path) -> list[psutil.Process]:
    """The live worker processes this test process started for ``address``."""
    found = []
    for child in psutil.Process().children():
        try:
            if str(address) in " ".join(child.cmdline()):
                found.append(child)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            pass  # the worker of an earlier test, ended and not yet reaped
    return found


def test_a_started_worker_keeps_its_own_session_log_and_idle_time(batches, tmp_path):
    """Its own session: a job killed by Snakemake does not take the group's worker with it.
    Its output goes to the log beside the socket. It ends after the idle time its job gave."""
    address = worker_address(f"own-{os.getpid()}", MODEL, tmp_path)
    started = time.monotonic()
    reply = segment_in_worker(address, 3, **call(batches, "0000", tmp_path))
    assert reply["status"] == "ok"
    worker = started_workers(address)
    assert len(worker) == 1 and os.getsid(worker[0].pid) != os.getsid(0)
    assert worker[0].wait(timeout=30) == 0
    assert time.monotonic() - started < 25  # 3 s idle, not IDLE_SECONDS
    log = Path(f"{address}.log").read_text()
    assert f"sam2flow worker {worker[0].pid}: 1 batches: done" in log


def test_the_last_line_of_a_workers_log_is_its_error(tmp_path):
    from sam2flow.worker import _last_line

    log = tmp_path / "w.log"
    log.write_bytes(b"Traceback\n  File \xff\nOSError: AF_UNIX path too long\n\n")
    assert _last_line(log) == "OSError: AF_UNIX path too long"
    log.write_text("")
    assert _last_line(log) == "its log is empty"


def raw_connection(address: Path):
    """A job's connection to a worker, not yet taken (it waits in the worker's queue)."""
    import socket
    from multiprocessing.connection import Connection

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(address))
    return Connection(sock.detach())


def raw_job(address: Path):
    """A job's connection to a worker, taken (its hello read)."""
    from sam2flow import worker

    conn = raw_connection(address)
    assert conn.recv() == worker.HELLO
    return conn


def test_a_job_that_goes_away_does_not_end_or_stop_the_worker(batches, tmp_path, serving):
    """Before its request (cancelled while it waited), or before its reply."""
    address, wait = serving("gone", idle=60)
    raw_job(address).close()
    gone = raw_job(address)
    gone.send({"call": call(batches, "0009", tmp_path), "env": {}, "last": False})
    gone.close()
    assert wait(0.5) is None
    reply = segment_in_worker(address, last=True, **call(batches, "0000", tmp_path))
    assert reply["status"] == "ok" and wait(10) == 2


def test_a_job_that_connected_while_the_last_batch_ran_is_still_served(batches, tmp_path, serving):
    """The worker unlists its socket after the last batch, then serves the jobs that
    reached it before (a job that came later starts a new worker)."""
    from sam2flow import worker

    address, wait = serving("drain", idle=60)
    last = raw_job(address)  # the worker is now busy with this job
    late = raw_connection(address)  # and this one waits in its queue
    last.send({"call": call(batches, "0001", tmp_path), "env": {}, "last": True})
    assert last.recv()["record"]["status"] == "ok"
    assert late.recv() == worker.HELLO
    late.send({"call": call(batches, "0002", tmp_path), "env": {}, "last": False})
    reply = late.recv()
    assert reply["record"]["status"] == "ok" and reply["served"] == 2
    assert wait(10) == 2


def test_the_workers_log_handler_leaves_with_its_batch(batches, tmp_path):
    from sam2flow.worker import handle

    before = list(logging.getLogger().handlers)
    handle({"call": call(batches, "0000", tmp_path), "env": {}}, 1)
    assert logging.getLogger().handlers == before


def test_the_worker_command_serves_and_says_how_many_batches(tmp_path, capsys):
    from sam2flow.worker import main

    root = logging.getLogger()
    level = root.level
    address = worker_address("command", MODEL, tmp_path)
    address.parent.mkdir(mode=0o700, exist_ok=True)
    try:
        assert main([str(address), "--idle", "0.2"]) == 0
        assert root.level == logging.INFO  # a job's INFO lines are sent back to it
    finally:
        root.setLevel(level)
    assert capsys.readouterr().out == f"sam2flow worker {os.getpid()}: 0 batches: done\n"
    assert not address.exists()


def test_a_group_has_a_worker_per_model(batches, monkeypatch):
    from sam2flow.worker import group_worker

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    other = ModelOptions(weights="random", image_size=128, device="cpu")
    assert (
        group_worker(batches, "v", "0000", 2, MODEL).address
        != group_worker(batches, "v", "0000", 2, other).address
    )


def test_the_socket_folder_is_made_closed_to_others(tmp_path, monkeypatch):
    use_tmpdir(monkeypatch, tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    from sam2flow import worker

    address = worker_address("fresh", MODEL, tmp_path)
    worker._private_folder(address.parent)
    assert address.parent.parent == tmp_path / "tmp"
    assert address.parent.stat().st_mode & 0o777 == 0o700
