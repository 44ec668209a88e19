"""What the Snakefile asks while it builds the DAG: which batches group into one job, which
batch a chained batch carries from, how a batch is redone, what a job needs, whether the
config and the sheet are valid, and which options can change masks.

Decisions only, made from the config, the sample sheet and earlier records: nothing here
imports torch, SAM 2 or OpenCV's model input path, so a parse of the workflow (every
``snakemake`` call, every cluster job's start) does not pay for them
(``tests/test_layers.py`` checks it).
"""
