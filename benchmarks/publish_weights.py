"""Publish finished runs as moderncnn's trained weights: safetensors files, weights-table entries, model cards.

    python benchmarks/publish_weights.py runs/reproduce/uva-tutorial5-fast/resnet_uva runs/lenet_bn-digits-...

Each RUN must be finished (``results.json``). Its tested checkpoint is stored in float16, else bfloat16, else
float32: the first whose test accuracy on the full test split stays within 0.002 of the run's; a run whose weights
miss that even in float32 is refused. The file goes into ``src/moderncnn/weights/files`` (up to 2 MB each, 20 MB in
all) or, with ``--url-base URL --upload-dir DIR``, into DIR for upload with the entry pointing at URL. The entry goes
into ``src/moderncnn/weights/table.json`` and the card (with its confusion matrix) into ``weights/cards``. Needs the
run's dataset (the test split is measured five times: three formats at most, flip TTA, JPEG at quality 95 and 75).
"""

from __future__ import annotations

import argparse
import os
import sys

from moderncnn.errors import ModernCNNError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN", help="finished run directories")
    parser.add_argument("--data-dir", help="data root (default: $MODERNCNN_DATA, else ~/.cache/moderncnn/data)")
    parser.add_argument("--recipe", help="how the runs were trained, for the table and card (default: from the run)")
    parser.add_argument("--url-base", help="URL folder the files above 2 MB will be served from")
    parser.add_argument("--upload-dir", help="where to write those files for upload")
    parser.add_argument(
        "--max-file-mb", type=float, default=2.0, help="largest file shipped in the package (default 2; 20 MB in all)"
    )
    parser.add_argument("--tolerance", type=float, default=0.002, help="largest test-accuracy change (default 0.002)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from moderncnn.reproduce.publish import publish_run

    failed = 0
    for run in args.runs:
        try:
            publish_run(
                run,
                data_dir=args.data_dir,
                recipe=args.recipe,
                url_base=args.url_base,
                upload_dir=args.upload_dir,
                tolerance=args.tolerance,
                max_bundled_bytes=int(args.max_file_mb * 1024 * 1024),
            )
        except ModernCNNError as err:
            print(f"publish_weights: {run}: {err}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
