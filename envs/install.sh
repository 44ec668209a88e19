#!/usr/bin/env bash
# sam2flow's install steps: `make install` runs this, and so does a user without make
# (a cluster login node), from a clone:
#
#   python3 -m venv .venv && source .venv/bin/activate
#   bash envs/install.sh                      # extras: slurm,h5 (SAM2FLOW_EXTRAS to change)
#
# TORCH_INDEX_URL picks the torch build for the cluster's CUDA driver, for example
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 bash envs/install.sh
# SAM2_BUILD_CUDA: 1 builds sam2's CUDA extension (needs nvcc that matches torch's CUDA);
# by default it is built where nvcc is on PATH, and skipped elsewhere.
set -euo pipefail
PYTHON=${PYTHON:-python}
EXTRAS=${SAM2FLOW_EXTRAS:-slurm,h5}
if [ -z "${SAM2_BUILD_CUDA:-}" ]; then
    if command -v nvcc >/dev/null; then SAM2_BUILD_CUDA=1; else SAM2_BUILD_CUDA=0; fi
fi
export SAM2_BUILD_CUDA
cd "$(dirname "$0")/.."
set -x
"$PYTHON" -m pip install --quiet --upgrade pip setuptools wheel
# torch first: sam2's setup.py imports it.
"$PYTHON" -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
    "torch>=2.5.1" torchvision
# sam2 is a source distribution: without build isolation it builds against the torch just
# installed instead of downloading a second one.
"$PYTHON" -m pip install --quiet --no-build-isolation "sam2==1.1.0"
"$PYTHON" -m pip install --quiet -e ".[$EXTRAS]"
