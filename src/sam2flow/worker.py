"""Worker: the batches of a group job segmented in one process that builds the model once.

Snakemake runs each job of a group in a process of its own, so every batch would build
the model and load its checkpoint again. With ``group_batches`` > 1 the first batch job of
a group starts a worker on its node (``python -m sam2flow.worker``), and each batch job of
the group hands its ``segment_folder`` call to it over a Unix socket in a folder only this
user can enter, then waits: the job still owns its outputs, its log and its exit status,
so a batch's failure fails that job only, and a rerun of one batch is that batch's job.
The batches of a group run one after the other (``plan.grouping``), so the worker runs
one request at a time. It ends after the group's last batch, or after ``idle`` seconds
without a request (a group whose last batch needs no redoing), and with the cluster job
that started it; a worker that died is started again by the next batch.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import pickle
import select
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from .errors import UserError

log = logging.getLogger(__name__)

#: Seconds a worker waits for its group's next batch before it ends.
IDLE_SECONDS = 120
#: Seconds a batch job waits for a worker it started to listen (torch and sam2 import).
START_SECONDS = 120
#: The longest path a Unix socket may have on Linux (``sun_path``, less its NUL).
SOCKET_PATH_MAX = 107


def worker_address(group: str, model: object, workdir: str | Path = ".") -> Path:
    """The socket of a group's worker: one per user, workflow folder, group, model and
    visible GPUs, in a folder of the user's own under the node's temporary folder.

    >>> a = worker_address("segment_v_0000", "tiny", "/w")
    >>> a == worker_address("segment_v_0000", "tiny", "/w"), a == worker_address("g", "tiny", "/w")
    (True, False)
    """
    key = "\0".join(
        [
            str(Path(workdir).resolve()),
            group,
            repr(model),
            os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    for base in (tempfile.gettempdir(), "/tmp"):
        address = Path(base) / f"sam2flow-{os.getuid()}" / f"{digest}.sock"
        if len(os.fsencode(address)) <= SOCKET_PATH_MAX:
            break  # else the job's TMPDIR is too deep for a socket: the node's /tmp
    return address


@dataclass(frozen=True)
class GroupWorker:
    """Where a batch job finds its group's worker, and whether its batch is the group's
    last (the worker ends after it, giving back the model's memory at once)."""

    address: Path
    last: bool


def group_worker(
    frames_root: str | Path,
    video: str,
    batch: str,
    group_batches: int,
    model: object,
    group_process: bool = True,
) -> GroupWorker | None:
    """The worker a batch job hands its batch to, or ``None`` to segment in its own
    process: batches are grouped (``group_batches`` > 1, config ``group_process``) and its
    group is named from the extraction's manifest. Within a cluster job (``SLURM_JOB_ID``)
    the group's batches share one worker; two group jobs never do.

    >>> group_worker("frames", "v", "0003", 1, "tiny") is None
    True
    """
    from .frame_folders import read_manifest
    from .plan.grouping import group_last, group_name
    from .vocabulary import batches_in_order

    if group_batches <= 1 or not group_process:
        return None
    names = batches_in_order(read_manifest(frames_root).batches)
    group = group_name(batch, names, group_batches)
    job = os.environ.get("SLURM_JOB_ID", "")
    return GroupWorker(
        worker_address(f"{video}/{group}/{job}", model, Path.cwd()),
        group_last(batch, names, group_batches),
    )


def _private_folder(folder: Path) -> None:
    """A folder only this user can enter: the socket takes requests from whoever reaches
    it."""
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise UserError(
            "the worker folder belongs to someone else or is open to others",
            folder,
            "remove it, or set TMPDIR to a folder of your own",
        )


#: What a worker says first to each job it takes: a connection that ends before it is a
#: worker that died (its socket can take connections for a moment after), not a batch lost.
HELLO = "sam2flow worker ready"


def _connect(address: Path) -> Connection | None:
    """A connection to a worker that is alive and has taken this job (it may first finish
    another job's batch), else ``None``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(address))
    except OSError:
        sock.close()
        return None
    conn = Connection(sock.detach())
    try:
        if conn.recv() == HELLO:
            return conn
    except (EOFError, OSError, pickle.UnpicklingError):
        pass
    conn.close()
    return None


def connect_or_start(address: Path, idle: float = IDLE_SECONDS) -> Connection:
    """A connection to the worker at ``address``, started first when none listens there
    (one starter at a time: a file lock beside the socket)."""
    from filelock import FileLock

    _private_folder(address.parent)
    if conn := _connect(address):
        return conn
    with FileLock(str(address) + ".lock"):
        if conn := _connect(address):
            return conn
        address.unlink(missing_ok=True)  # left by a worker that was killed
        log_path = Path(str(address) + ".log")
        with open(log_path, "a") as err:
            worker = subprocess.Popen(
                [sys.executable, "-m", "sam2flow.worker", str(address), "--idle", str(idle)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,  # not stopped with the job that happened to start it
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and worker.poll() is None:
            if conn := _connect(address):
                return conn
            time.sleep(0.2)
    if worker.poll() is None:
        why = f"not listening after {START_SECONDS} s"
    else:  # it failed at once (an import error, a socket it cannot make): say why now
        why = f"it ended with exit {worker.returncode}: {_last_line(log_path)}"
    raise UserError(
        f"the group's worker did not start ({why})",
        log_path,
        "read its log; or set group_process: false to segment each batch in its own process",
    )


def _last_line(path: Path) -> str:
    """The last non-empty line of a worker's log (a traceback's last line is its error)."""
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    return next((line for line in reversed(lines) if line), "its log is empty")


def segment_in_worker(
    address: Path, idle: float = IDLE_SECONDS, last: bool = False, **call
) -> dict:
    """``segment.segment_folder(**call)`` in the group's worker: its log lines are logged
    here, its record returned, its error raised here as the same kind of error. ``last``:
    the group's last batch, after which the worker ends."""
    env = {k: v for k, v in os.environ.items() if k.startswith("SAM2FLOW_")}
    conn = connect_or_start(address, idle)
    try:
        conn.send({"call": call, "env": env, "last": last})
        reply = conn.recv()
    except (EOFError, OSError) as exc:
        raise MemoryError(  # the kernel's OOM killer is what ends a worker mid-batch
            f"the group's worker ended while segmenting ({type(exc).__name__}); out of host "
            "memory? (its log: " + str(address) + ".log)"
        ) from exc
    finally:
        conn.close()
    for record in reply["logs"]:
        logging.getLogger(record.name).handle(record)
    log.info(
        "segmented in the group's worker (pid %d): its batch %d, the model built %d time(s) there",
        reply["pid"],
        reply["served"],
        reply["model_builds"],
    )
    if reply["error"] is None:
        return reply["record"]
    kind, message = reply["error"]
    if kind == "user":
        raise UserError(message)
    if kind == "memory":
        raise MemoryError(message)
    raise RuntimeError(f"in the group's worker:\n{message}")


def segment_job(worker: GroupWorker | None, **call) -> dict:
    """``segment.segment_folder(**call)`` where ``group_worker`` said: in this process
    (``None``), or in the group's worker, which ends after the group's last batch."""
    if worker is None:
        from .segment import segment_folder

        return segment_folder(**call)
    return segment_in_worker(worker.address, last=worker.last, **call)


class _Collect(logging.Handler):
    """The log records of one request, sent back to the job that asked."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = record.getMessage(), None
        record.exc_info = record.exc_text = None
        self.records.append(record)


def handle(request: dict, served: int) -> dict:
    """Run one request: ``segment_folder`` with the job's ``SAM2FLOW_*`` environment."""
    from .models import build_model
    from .segment import segment_folder

    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    saved = {k: v for k, v in os.environ.items() if k.startswith("SAM2FLOW_")}
    for k in saved:
        del os.environ[k]
    os.environ.update(request["env"])
    record, error = None, None
    try:
        record = segment_folder(**request["call"])
    except UserError as exc:
        error = ("user", str(exc))
    except MemoryError as exc:
        error = ("memory", str(exc))
    except Exception:
        error = ("bug", traceback.format_exc())
    finally:
        root.removeHandler(collect)
        for k in request["env"]:
            os.environ.pop(k, None)
        os.environ.update(saved)
        _release_cached_memory()
    return {
        "record": record,
        "error": error,
        "logs": collect.records,
        "pid": os.getpid(),
        "served": served,
        "model_builds": build_model.cache_info().misses,
    }


def _release_cached_memory() -> None:
    """Give the GPU's cached blocks back between batches (the model's weights stay): an
    idle worker holds no more than its model."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def serve(address: Path, idle: float = IDLE_SECONDS) -> int:
    """Take requests at ``address`` until one for the group's last batch has been served,
    or ``idle`` seconds pass without one. Returns how many it served."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(address))
    listener.listen()
    served, listed, last = 0, True, False
    try:
        while not last and select.select([listener], [], [], idle)[0]:
            served, last = _serve_one(listener, served)
        # Unlisted first, so that no job connects any more, then a job that connected
        # just before is still served; a job that comes later starts a new worker.
        address.unlink(missing_ok=True)
        listed = False
        while select.select([listener], [], [], 0)[0]:
            served, _ = _serve_one(listener, served)
    finally:
        listener.close()
        if listed:  # ended by an error: the next job starts a new worker
            address.unlink(missing_ok=True)
    return served


def _serve_one(listener: socket.socket, served: int) -> tuple[int, bool]:
    """Serve one job: how many are served now, and whether it was the group's last."""
    sock, _ = listener.accept()
    with contextlib.closing(Connection(sock.detach())) as conn:
        try:
            conn.send(HELLO)
            request = conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError):
            return served, False  # a job that went away
        reply = handle(request, served + 1)
        with contextlib.suppress(OSError):  # its job was cancelled meanwhile
            conn.send(reply)
    return served + 1, bool(request.get("last"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam2flow.worker")
    parser.add_argument("socket", help="Unix socket to listen on")
    parser.add_argument("--idle", type=float, default=IDLE_SECONDS, help="seconds to wait")
    args = parser.parse_args(argv)
    from .logs import quiet_third_party

    quiet_third_party()
    logging.getLogger().setLevel(logging.INFO)  # a job's INFO lines reach its log
    served = serve(Path(args.socket), args.idle)
    print(f"sam2flow worker {os.getpid()}: {served} batches: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
