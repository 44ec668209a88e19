"""sam2flow: segment long videos with SAM 2 on GPUs that are too small for the job."""

__version__ = "0.1.0"
