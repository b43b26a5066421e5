#!/usr/bin/env bash
# The README's look-inside pictures, made by the commands themselves from a run trained on this machine:
#
#   bash benchmarks/readme_pictures.sh RUN      # e.g. runs/time-to-accuracy/cifar10-25min (resnet20 on CIFAR-10)
#
# Writes docs/filters.png, docs/features.png, docs/explain/ (Grad-CAM on a few CIFAR-10 test images, written out
# as PNG files first) and docs/serve-page.png (the serve page in headless Chromium). Needs the run's dataset in the
# data root (../shared/data/prepare ~/.cache/moderncnn/data).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?give a run directory, e.g. runs/time-to-accuracy/cifar10-25min}
MODERNCNN=${MODERNCNN:-.venv/bin/moderncnn}
PY=${PYTHON:-.venv/bin/python}
IMAGES=$(mktemp -d)
trap 'rm -rf "$IMAGES"' EXIT

# A few test images of the run's dataset as files, in folders named by class (explain marks its mistakes).
"$PY" - "$RUN" "$IMAGES" <<'EOF'
import sys
from pathlib import Path

from PIL import Image

from moderncnn.data import load_dataset
from moderncnn.run.config import TrainConfig

run, out = Path(sys.argv[1]), Path(sys.argv[2])
config = TrainConfig.load(run / "config.yaml")
data = load_dataset(config.dataset, data_dir=config.data_dir, val_size=0)
test = data.splits["test"]
for i in (0, 1, 2, 3, 4, 5):
    image = test.images[i]
    array = image.permute(1, 2, 0).numpy() if image.shape[0] == 3 else image[0].numpy()
    folder = out / data.classes[int(test.labels[i])]
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(folder / f"test-{i}.png")
EOF

mkdir -p docs
set -x
"$MODERNCNN" filters "$RUN" --out docs/filters.png
"$MODERNCNN" features "$RUN" "$(find "$IMAGES" -name 'test-0.png')" --out docs/features.png
"$MODERNCNN" explain "$RUN" "$IMAGES" --method gradcam --out docs/explain
# The page of `moderncnn serve` with this run, one test image uploaded (the browser test, in headless Chromium).
MODERNCNN_SCREENSHOT=docs/serve-page.png MODERNCNN_SCREENSHOT_RUN="$RUN" \
  MODERNCNN_SCREENSHOT_IMAGE="$(find "$IMAGES" -name 'test-0.png')" \
  "$PY" -m pytest -q -p no:cacheprovider tests/test_serve_browser.py
