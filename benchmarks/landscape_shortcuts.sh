#!/usr/bin/env bash
# The tutorial's comparison: the loss landscape of resnet20 next to the same network without its shortcuts
# (`shortcut: none`, the paper's plain-20), both trained briefly the same way on CIFAR-10, then `moderncnn landscape`
# on each (2-D, filter-normalised random directions, BatchNorm statistics fixed). Prints the time of every step.
#
#   bash benchmarks/landscape_shortcuts.sh                 # EPOCHS=3 POINTS=13 OUT=runs/landscape-shortcuts
#
# Writes docs/landscape-resnet20.png and docs/landscape-plain20.png (each with its CSV beside it). Needs CIFAR-10 in
# the data root (../shared/data/prepare ~/.cache/moderncnn/data). About 10 minutes on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
MODERNCNN=${MODERNCNN:-.venv/bin/moderncnn}
EPOCHS=${EPOCHS:-3}
POINTS=${POINTS:-13}
OUT=${OUT:-runs/landscape-shortcuts}
mkdir -p docs "$OUT"

timed() {
  local started=$SECONDS
  "$@"
  echo "$(($SECONDS - started)) s: $*" >&2
}

for variant in resnet20:zeropad plain20:none; do
  name=${variant%%:*}
  shortcut=${variant##*:}
  if [ ! -f "$OUT/$name/results.json" ]; then
    timed "$MODERNCNN" train resnet20 --dataset cifar10 --model-kwargs "{shortcut: $shortcut}" --epochs "$EPOCHS" \
      --schedule onecycle --augment cifar --quiet --run-dir "$OUT/$name" > /dev/null
  fi
  grep -o '"summary": "[^"]*"' "$OUT/$name/results.json"
  timed "$MODERNCNN" landscape "$OUT/$name" --dim 2 --points "$POINTS" --out "docs/landscape-$name.png"
done
