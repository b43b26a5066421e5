"""Re-check every shipped weight: its test accuracy on the full test split, through `evaluate weights:NAME`.

    python benchmarks/check_weights.py [NAME ...] [--write]

Each weight is loaded as a user loads it (checksum, safetensors, the table's preprocessing) and evaluated with
``moderncnn.engine.evaluate`` on its dataset's full test split, plain and with its test-time augmentation; a
weight holds when both are within 0.002 of its table entry. ``--write`` puts the table into
``benchmarks/RESULTS.md`` (replacing the section it wrote before). Weights whose dataset is absent are listed as
skipped. Exit code 1 when one misses.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

HEADING = "## Shipped weights re-checked (`benchmarks/check_weights.py`)"
TOLERANCE = 0.002


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="weights to check (default: all)")
    parser.add_argument("--data-dir", help="data root")
    parser.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # OMP_NUM_THREADS=2 python ... for a quiet 2-core machine
    from moderncnn.engine.evaluate import evaluate
    from moderncnn.errors import DataError
    from moderncnn.weights import list_weights

    rows, missed = [], 0
    for name in args.names or list_weights():
        from moderncnn.weights import get_weights_info

        info = get_weights_info(name)
        started = time.perf_counter()
        try:
            plain = evaluate(f"weights:{name}", data_dir=args.data_dir, tta=False)
            tta = evaluate(f"weights:{name}", data_dir=args.data_dir, tta=info.tta)
        except DataError as err:
            rows.append(f"| {name} | {_f(info.test_acc)} | skipped: {err} | | | | |")
            continue
        ok = abs(plain.accuracy - info.test_acc) <= TOLERANCE and abs(tta.accuracy - info.test_acc_tta) <= TOLERANCE
        missed += not ok
        rows.append(
            f"| {name} | {_f(info.test_acc)} | {_f(plain.accuracy)} | {_f(info.test_acc_tta)} | {_f(tta.accuracy)} | "
            f"{plain.images:,} | {'yes' if ok else 'NO'} ({time.perf_counter() - started:.0f} s) |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(
        [
            HEADING,
            "",
            f"{datetime.date.today().isoformat()}, {platform.machine()} CPU, {_threads()}: each weight evaluated with "
            "`evaluate weights:NAME` on the full test split, plain and with its test-time augmentation, beside "
            f"what its table entry and card state (holds: both within {TOLERANCE}).",
            "",
            "| weights | card test acc | measured | card TTA | measured TTA | images | holds |",
            "|---|--:|--:|--:|--:|--:|---|",
            *rows,
            "",
        ]
    )
    print(table)
    if args.write:
        results = Path(__file__).with_name("RESULTS.md")
        text = results.read_text()
        if HEADING in text:
            start = text.index(HEADING)
            end = text.find("\n## ", start + len(HEADING))
            text = text[:start] + table + ("\n" + text[end + 1 :] if end != -1 else "")  # a blank line before the next
        else:
            text = text.rstrip("\n") + "\n\n" + table
        results.write_text(text)
    return 1 if missed else 0


def _f(value) -> str:
    return "" if value is None else f"{value:.4f}"


def _threads() -> str:
    import torch

    count = torch.get_num_threads()
    return "one thread" if count == 1 else f"{count} threads"


if __name__ == "__main__":
    sys.exit(main())
