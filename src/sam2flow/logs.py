"""Logging for the command line and the Snakemake scripts.

In a Snakemake job, plain log lines go to the rule's ``log:`` file; a ``UserError`` is
written there as one line (then its traceback) and the job fails with that line on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable

from .errors import HOST_OOM_EXIT, UserError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def quiet_third_party() -> None:
    """Silence what floods logs: sam2's per-frame progress bars and its repeated warning
    about the missing CUDA extension (shown once), and numexpr's thread-count notice."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.getLogger("numexpr").setLevel(logging.WARNING)
    warnings.filterwarnings("once", message=r"cannot import name '_C'")


def run_script(log_path: str | None, main: Callable[[], object]) -> None:
    """Run a Snakemake script's ``main`` with logging to ``log_path``; exit non-zero on error.

    A ``UserError`` (exit 1) or a job out of host memory (exit ``HOST_OOM_EXIT``, 3) is one
    line in the log and on stderr, then its traceback in the log; anything else is a bug
    and keeps its traceback.
    """
    quiet_third_party()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers = [logging.FileHandler(log_path, mode="w")]
    logging.basicConfig(level=logging.INFO, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    log = logging.getLogger("sam2flow")
    try:
        main()
    except (UserError, MemoryError) as exc:
        log.error("%s", exc)
        log.error("%s", traceback.format_exc())
        print(f"sam2flow: error: {exc}", file=sys.stderr)
        sys.exit(HOST_OOM_EXIT if isinstance(exc, MemoryError) else 1)
    except Exception:
        log.exception("unexpected error (a bug: please report it with this log)")
        raise
