"""Job environment: what Snakemake's jobs inherit from the process that plans them.

With ``--sdm conda`` a job runs in an environment that holds the dependencies only (the env
file is copied, so it cannot name this repository by a relative path); on a cluster the
job's node sees the same file system. Putting the repository's ``src/`` on ``PYTHONPATH``
before any job starts lets every job import this library, whatever its environment.
"""

from __future__ import annotations

import os
from pathlib import Path


def expose_library(repository: str | Path) -> str:
    """Prepend ``repository/src`` to ``PYTHONPATH`` for the jobs; returns the new value.

    >>> import os; old = os.environ.pop("PYTHONPATH", None)
    >>> expose_library("/repo")
    '/repo/src'
    >>> _ = os.environ.pop("PYTHONPATH")
    >>> os.environ.update({} if old is None else {"PYTHONPATH": old})
    """
    src = str(Path(repository, "src"))
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != src]
    os.environ["PYTHONPATH"] = os.pathsep.join([src, *parts])
    return os.environ["PYTHONPATH"]
