"""Vocabulary: the words and defaults that several layers share, owned here once.

A frame's and a batch's status, the guard's levels and the defaults of the command line,
the config and the library are read from here, so that a word or a default changed in one
place cannot leave another layer speaking the old one (``tests/test_vocabulary.py`` holds
``config/config.yaml`` to the same defaults). A leaf: it imports nothing, so the memory
guard and the workflow's plan may both read it.
"""

#: A frame's status in a batch's ``masks.npz``, ``frames.csv`` and record: segmented,
#: skipped after out-of-memory, without any prompt, or segmented and found empty.
OK, SKIPPED_OOM, NO_PROMPT, EMPTY = "ok", "skipped_oom", "no_prompt", "empty"
FRAME_STATUSES = (OK, SKIPPED_OOM, NO_PROMPT, EMPTY)

#: A batch's status in its record: every frame at the first try, after the guard's
#: recovery, or with frames skipped.
RECOVERED, SKIPPED = "recovered", "skipped"
BATCH_STATUSES = (OK, RECOVERED, SKIPPED)

#: The memory guard's levels, in the order it tries them: the batch whole, in chunks, in
#: chunks with frames and state in host memory, on the CPU.
WHOLE, CHUNKED, OFFLOAD, CPU = "whole", "chunked", "offload", "cpu"
LEVELS = (WHOLE, CHUNKED, OFFLOAD, CPU)

#: What a batch's name looks like (``frame_folders.batch_name``; the workflow's ``batch``
#: wildcard): a day at 60 frames/s is ~13,000 batches of 400 frames, so names grow past
#: four digits. Written without ``{4,}``: Snakemake reads a constraint's braces only as
#: ``{m}`` or ``{m,n}``, and ``{4,}`` made the rule match no file.
BATCH_PATTERN = r"\d\d\d\d+"


def batches_in_order(names) -> list[str]:
    """Batch names in the video's order: by number, so that batch ``10000`` follows
    ``9999`` (as text it would sort before ``2``).

    >>> batches_in_order(["10000", "9999", "0002"])
    ['0002', '9999', '10000']
    """
    return sorted(names, key=int)


#: How frames become model input (``frame_source``): SAM 2's own loader, or OpenCV.
DECODERS = ("sam2", "opencv")

# Defaults of the command line, the config and the library alike.
DEFAULT_BATCH_SIZE = 400  # frames per batch
DEFAULT_QUALITY = 95  # JPEG quality of extracted frames
DEFAULT_CUTOFF = 0.6  # DeepLabCut's default pcutoff
DEFAULT_MODEL = "sam2.1_hiera_tiny"
DEFAULT_CHECKPOINT_DIR = "resources/checkpoints"
DEFAULT_THRESHOLD = 0.85  # used fraction of the GPU above which the guard cleans up
DEFAULT_MIN_CHUNK = 25  # frames: the smallest chunk an out-of-memory retry makes
DEFAULT_SIZING_FILE = "resources/sizing.json"
DEFAULT_GROW_AFTER = 3  # clean runs at a remembered size before the whole batch is tried
