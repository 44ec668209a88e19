"""Carry: which batch starts from which, when a video is not prompted in every batch.

``independent``: every batch uses its own prompt (parallel). ``chained``: every batch but
the first may start from the previous batch's last masks (in order). ``auto`` (default): a
batch with a prompt of its own runs independently; one without is chained. A chained batch
starts on the previous batch's last frame with its masks, exactly as a chunk continues
from the chunk before it (``segment._Segmenter``).
"""

from __future__ import annotations

from ..errors import BadValue
from ..prompts import PromptOptions, dlc_batch_prompt, read_dlc
from ..vocabulary import batches_in_order

CARRY_MODES = ("auto", "independent", "chained")


def own_prompt_batches(batches: dict[str, list[int]], options: PromptOptions) -> set[str]:
    """Names of the ``batches`` (name -> [first, last] frame) that have a prompt of their own.

    >>> batches = {"0000": [0, 9], "0001": [10, 19]}
    >>> sorted(own_prompt_batches(batches, PromptOptions(points="1,2", prompt_frame=12)))
    ['0001']
    """
    o = options
    if o.prompts_file:
        keypoints = read_dlc(o.prompts_file).select(o.bodyparts)
        return {
            name
            for name, (first, last) in batches.items()
            if dlc_batch_prompt(keypoints, list(range(first, last + 1)), o.cutoff) is not None
        }
    if o.points or o.box or o.mask:
        if o.prompt_frame is None:  # prompt on each batch's own first frame
            return set(batches)
        return {name for name, (first, last) in batches.items() if first <= o.prompt_frame <= last}
    return set()


def carry_source(batch: str, batches: list[str], mode: str, own: set[str]) -> str | None:
    """The batch whose last masks ``batch`` starts from, or ``None`` (it runs on its own).

    >>> carry_source("0002", ["0000", "0001", "0002"], "auto", own={"0000"})
    '0001'
    >>> carry_source("0002", ["0000", "0001", "0002"], "auto", own={"0002"}) is None
    True
    """
    if mode not in CARRY_MODES:
        raise BadValue(f"carry must be one of {', '.join(CARRY_MODES)}, got {mode!r}")
    order = batches_in_order(batches)
    index = order.index(batch)
    if index == 0 or mode == "independent" or (mode == "auto" and batch in own):
        return None
    return order[index - 1]
