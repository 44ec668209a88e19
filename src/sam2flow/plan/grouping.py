"""Grouping: several batches of a video in one cluster job (config ``group_batches``).

One hour of video is ~270 batches of 400 frames; as one SLURM job each, every batch pays
the queue's wait and the model's start-up. With ``group_batches: N``, batches
``kN .. kN+N-1`` of a video share the Snakemake group ``segment_{video}_{first batch}``,
and so one submission with one GPU. Inside the group each batch waits for the one before
it (``group_predecessor``): that is what makes them one job (Snakemake submits one job
per *connected* part of a group, and batches with their own prompts are otherwise not
connected), and what keeps two batches from sharing the GPU at once, since the job that
runs a group on its node knows nothing of the GPU count.
"""

from __future__ import annotations


def group_name(batch: str, batches: list[str], size: int) -> str | None:
    """The group (its first batch's name) that ``batch`` belongs to, or ``None`` when
    batches are not grouped (``size`` <= 1).

    >>> group_name("0005", [f"{i:04d}" for i in range(8)], 3)
    '0003'
    >>> group_name("0005", ["0005"], 1) is None
    True
    """
    if size <= 1:
        return None
    return batches[batches.index(batch) // size * size]


def group_predecessor(batch: str, batches: list[str], size: int) -> str | None:
    """The batch that ``batch`` runs after inside its group; ``None`` for a group's first
    batch and when batches are not grouped.

    >>> names = [f"{i:04d}" for i in range(5)]
    >>> [group_predecessor(b, names, 2) for b in names]
    [None, '0000', None, '0002', None]
    """
    index = batches.index(batch)
    if size <= 1 or index % size == 0:
        return None
    return batches[index - 1]


def group_last(batch: str, batches: list[str], size: int) -> bool:
    """Whether ``batch`` is the last of its group to run (its group's worker may end after
    it); ``False`` when batches are not grouped.

    >>> names = [f"{i:04d}" for i in range(5)]
    >>> [group_last(b, names, 2) for b in names], group_last("0001", names, 1)
    ([False, True, False, True, True], False)
    """
    index = batches.index(batch)
    return size > 1 and (index % size == size - 1 or index == len(batches) - 1)


def group_id(video: str, group: str) -> str:
    """Snakemake's group id of a video's group (SLURM shows it in the job's name)."""
    return f"segment_{video}_{group}"
