#!/usr/bin/env bash
# Runs benchmarks/gpu_check.py on a GPU machine that has torch, transformers, peft, scikit-learn
# and scipy but not the rest of hk_tune's dependencies, and no network (docs/design.md 5).
#
#   bash benchmarks/gpu_check.sh prepare   # here, with network: wheels into .gpu_wheels/
#   bash benchmarks/gpu_check.sh           # there: installs them beside the checkout, runs
#
# Only a few wheels travel, bitsandbytes the largest: the check builds its models in the real
# models' shapes from configs (no weights), and without `datasets` (pyarrow alone is over what
# can be sent) its trial-loop part times a reused-actor trial's set-up instead of whole
# `run_loop` runs.
# The report goes to $OUT/gpu_check.txt (and .json) when OUT is set, else to the current folder.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.gpu_wheels
# hk_tune's config layer, and bitsandbytes for the QLoRA part; the rest is there.
PACKAGES=(pyyaml==6.0.4 packaging==26.4 bitsandbytes==0.50.2)

if [ "${1:-}" = prepare ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --implementation cp \
    -d "$WHEELS" "${PACKAGES[@]}"
  du -sh "$WHEELS"
  exit 0
fi

site=.gpu_site
if [ -d "$WHEELS" ]; then
  python3 -m pip install -q --no-deps --no-index --target "$site" "$WHEELS"/*.whl
fi
export PYTHONPATH="$PWD:$PWD/$site:${PYTHONPATH:-}"
out=${OUT:-.}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
status=0
python3 benchmarks/gpu_check.py --device cuda --json > "$out/gpu_check.txt" \
  2> "$out/gpu_check.err" || status=$?
tail -n 1 "$out/gpu_check.txt" > "$out/gpu_check.json"
head -n -1 "$out/gpu_check.txt"
exit $status
