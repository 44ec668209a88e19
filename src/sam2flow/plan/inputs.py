"""Inputs: which of a video's own files (the video, its prompt files) a job declares as
input. Snakemake waits for a declared input that a rule makes and follows its
modification time; not every path can be one.
"""

from __future__ import annotations

from pathlib import Path


def tracked(paths, made_by_rules=()) -> list[str]:
    """The paths of ``paths`` to declare as input: those that exist or that a rule of the
    workflow makes (``made_by_rules``: the demo's files). A missing one is left to its job,
    which then fails alone, naming it. Never a path with a brace: Snakemake reads
    ``{cage}`` in an input as a wildcard, with no escape, and such a path stopped the plan
    of every video; its content is still followed, by its identity (``identity``).

    >>> tracked(["demo.mp4", "gone.mp4", "cage{3}.mp4"], made_by_rules=["demo.mp4"])
    ['demo.mp4']
    """
    return [
        p
        for p in map(str, paths)
        if (p in made_by_rules or Path(p).exists()) and not set("{}") & set(p)
    ]
