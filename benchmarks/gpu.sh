#!/usr/bin/env bash
# The chapter on one NVIDIA GPU, in under 8 minutes: `moderncnn benchmark` of the d2l-ch7 recipe's seven networks at
# their textbook inputs and batch sizes, then `moderncnn reproduce d2l-ch7 --budget full`, then one results table.
#
#   bash benchmarks/gpu.sh                 # on the GPU machine, from a checkout (no install needed: PYTHONPATH=src)
#   BUDGET=smoke bash benchmarks/gpu.sh    # the same steps, tiny, on the CPU: to check the script anywhere
#
# Needs only Fashion-MNIST's four .gz files (train/t10k images/labels, 30 MB) in .device-data/ (ignored by git; or
# DEVICE_DATA=folder), and a python3 with torch, torchvision, lightning, torchmetrics, pyyaml, rich, matplotlib.
# Writes everything under OUT (default runs/gpu-BUDGET): benchmark.json, the runs, comparison.md, results.md.
# Then `moderncnn reproduce airbench` (the speed-run recipe, 3 seeds) where CIFAR-10 is in the data root
# (cifar-10-batches-py/); its 180 MB do not fit the 64 MiB a lent machine carries, so it is skipped, with a line saying
# so, on a machine without them.
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET=${BUDGET:-full}
PY=${PYTHON:-python3}
DEVICE_DATA=${DEVICE_DATA:-.device-data}
OUT=${OUT:-runs/gpu-$BUDGET}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export MODERNCNN_DATA=${MODERNCNN_DATA:-$PWD/$DEVICE_DATA/root}
export PYTHONUNBUFFERED=1
case "$BUDGET" in
  full) ACCEL=gpu; BENCH=(--device cuda) ;;
  smoke) ACCEL=cpu; BENCH=(--device cpu --batch-size 2 --repeats 1 --min-pass-s 0) ;;
  *) echo "BUDGET must be full or smoke, got $BUDGET" >&2; exit 2 ;;
esac

# Fashion-MNIST as torchvision reads it: the decompressed files in FashionMNIST/raw under the data root.
raw="$MODERNCNN_DATA/FashionMNIST/raw"
mkdir -p "$raw" "$OUT"
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [ ! -s "$raw/$name" ]; then
    if [ ! -f "$DEVICE_DATA/$name.gz" ]; then
      echo "missing $DEVICE_DATA/$name.gz: put Fashion-MNIST's four .gz files in $DEVICE_DATA/" >&2
      exit 2
    fi
    gunzip -c "$DEVICE_DATA/$name.gz" >"$raw/$name.tmp" && mv "$raw/$name.tmp" "$raw/$name"
  fi
done

if [ "$ACCEL" = gpu ]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true; fi
"$PY" -c 'import torch, sys; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, cuda {torch.cuda.is_available()}")'

start=$(date +%s)
echo "== moderncnn benchmark (d2l-ch7 networks, fp32 beside auto)"
"$PY" -m moderncnn.cli benchmark --recipe d2l-ch7 "${BENCH[@]}" --json >"$OUT/benchmark.json"
bench_done=$(date +%s)
echo "   $((bench_done - start)) s"

echo "== moderncnn reproduce d2l-ch7 --budget $BUDGET"
"$PY" -m moderncnn.cli reproduce d2l-ch7 --budget "$BUDGET" --out "$OUT/d2l-ch7" --accelerator "$ACCEL" --quiet
end=$(date +%s)
echo "   $((end - bench_done)) s"

"$PY" - "$OUT" "$((end - bench_done))" "$((end - start))" <<'EOF' | tee "$OUT/results.md"
"""One table: per network the benchmark's images/sec and the reproduction's results beside the book's."""
import json
import sys
from pathlib import Path

out, reproduce_s, total_s = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


def num(value, fmt=",.0f"):
    return "" if value is None else format(value, fmt)


bench = json.loads((out / "benchmark.json").read_text())
train = {}
for row in bench:
    if row["mode"] == "train":
        train.setdefault(row["model"], []).append(row)
device = bench[0]["device"] if bench else "?"
print(f"\n## d2l-ch7 on {device}: moderncnn benchmark and reproduce\n")
print("| network | bench train img/s fp32 | bench train img/s auto | auto of peak | test acc | book test acc "
      "| examples/sec | book (V100) | x book | >= 5x | wall s |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|")
for model in train:  # the recipe's order
    results, origin = out / "d2l-ch7" / model / "results.json", out / "d2l-ch7" / model / "reproduce.json"
    if not results.is_file():
        continue
    r = json.loads(results.read_text())
    published = json.loads(origin.read_text())["published"] if origin.is_file() else {}
    rows = train.get(r["model"], [])
    fp32 = next((x for x in rows if x["precision"] == "32"), {})
    auto = rows[-1] if rows else {}  # the benchmark lists fp32 first, then auto's choice when it differs
    book = published.get("book_examples_per_sec")
    ratio = r["examples_per_sec"] / book if book else None
    print(
        f"| {r['model']} | {num(fp32.get('images_per_sec'))} | {num(auto.get('images_per_sec'))} "
        f"{auto.get('precision', '')} | {num(auto.get('peak_fraction'), '.1%')} | {r['test_acc']:.3f} "
        f"| {published.get('book_test_acc', '')} | {num(r['examples_per_sec'])} | {num(book)} | {num(ratio, '.1f')} "
        f"| {('yes' if ratio >= 5 else 'no') if ratio else ''} | {num(r['wall_seconds'])} |"
    )
print(f"\nreproduce d2l-ch7: {reproduce_s} s (target at --budget full: 100 s or less); whole script {total_s} s")
EOF

if [ -d "$MODERNCNN_DATA/cifar-10-batches-py" ]; then
  AIRBENCH_BUDGET=$([ "$BUDGET" = full ] && echo full || echo smoke)
  for seed in 42 1 2; do
    echo "== moderncnn reproduce airbench --budget $AIRBENCH_BUDGET --seed $seed"
    airbench_start=$(date +%s)
    "$PY" -m moderncnn.cli reproduce airbench --budget "$AIRBENCH_BUDGET" --seed "$seed" \
      --out "$OUT/airbench-seed$seed" --accelerator "$ACCEL" --quiet | grep -E "^\| airbench94|wrote" || true
    echo "   $(($(date +%s) - airbench_start)) s, whole command (paper: 0.9401 in 2.59 s on an A100)"
  done
else
  echo "== reproduce airbench skipped: no CIFAR-10 in $MODERNCNN_DATA (cifar-10-batches-py/)"
fi
