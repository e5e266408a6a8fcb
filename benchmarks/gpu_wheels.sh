#!/usr/bin/env bash
# The wheels the GPU machine lacks, for CPython 3.12 manylinux x86-64, into .whl/ (ignored by git), where
# there is a network. benchmarks/gpu_suite.py installs them there offline:
#   pip install --no-index --no-deps --target DIR .whl/*.whl
# That machine has Python 3.12, torch 2.11, Lightning 2.6, torchmetrics, typer, pillow, rich, safetensors,
# numpy, scipy, opencv-python-headless, pyyaml, tensorboard and matplotlib (its package list:
# the device tool's KINDS.md), but not albumentations and what it needs, nor torch-fidelity.
# typing-extensions comes along because pydantic needs a recent one.
#   bash benchmarks/gpu_wheels.sh             # download into .whl/
#   bash benchmarks/gpu_wheels.sh --dry-run   # print what it would download, download nothing
# tests/test_gpu_suite.py checks that this list covers what translate needs beyond that machine's packages
# and that each pinned version satisfies translate's requirements.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(
  albumentations==2.0.8
  albucore==0.0.24
  pydantic==2.14.4
  pydantic-core==2.50.5
  annotated-types==0.8.0
  typing-inspection==0.4.5
  typing-extensions==4.16.0
  stringzilla==5.3.2
  simsimd==6.5.16
  torch-fidelity==0.4.0
)
DEST=.whl
COMMAND=(python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
         --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
         --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST")
if [ "${1:-}" = "--dry-run" ]; then
  echo "would run: ${COMMAND[*]} ${WHEELS[*]}"
  for wheel in "${WHEELS[@]}"; do echo "would download: $wheel"; done
  exit 0
fi
if [ $# -gt 0 ]; then
  echo "usage: bash benchmarks/gpu_wheels.sh [--dry-run]" >&2
  exit 2
fi
mkdir -p "$DEST"
"${COMMAND[@]}" "${WHEELS[@]}"
echo "wheels in $DEST/: carry it to the GPU machine; benchmarks/gpu_suite.py installs them offline"
