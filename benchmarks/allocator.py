"""Which memory allocator trains fastest here: glibc's default against the alternatives a user can switch on.

    python benchmarks/allocator.py                                  # airbench94 at batch 2000, vgg_d2l at 512
    python benchmarks/allocator.py --case resnet20:128 --rounds 3
    python benchmarks/allocator.py --case alexnet_d2l:128:65 --case vgg_d2l:128:32   # d2l-ch7 fast's inputs

glibc gives every freed block above 32 MB back to the kernel, so a network whose per-step tensors are that large
(airbench94 at the recipe's batch of 2000; AlexNet's and VGG's fully connected layers) has them mapped and
zero-filled afresh at every step: kernel time, not arithmetic. Each case runs ``moderncnn benchmark MODEL --train``
in a fresh process once per allocator, the allocators in turn and the rounds alternating, and reports the training
images/s (the median of the benchmark's passes) with the child's kernel seconds and minor page faults:

- ``glibc``: the default;
- ``glibc-thp``: ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc >= 2.35), large blocks on transparent huge pages
  where the kernel allows them (``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise`` or ``always``);
- ``jemalloc`` / ``tcmalloc``: ``LD_PRELOAD`` of Debian's ``libjemalloc2`` / ``libtcmalloc-minimal4``, skipped
  (and said) where the library is not installed.

Nothing here changes how moderncnn runs: the figures say whether documenting one of these pays (>= 1.1x).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

LIBS = Path("/usr/lib/x86_64-linux-gnu")
ALLOCATORS = {
    "glibc": {},
    "glibc-thp": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
    "jemalloc": {"LD_PRELOAD": str(LIBS / "libjemalloc.so.2")},
    "tcmalloc": {"LD_PRELOAD": str(LIBS / "libtcmalloc_minimal.so.4")},
}
CLI = [sys.executable, "-m", "moderncnn.cli"]


def run_case(model: str, batch: int, env: dict, repeats: int, precision: str, size: int | None = None) -> dict:
    """One ``moderncnn benchmark`` of ``model`` in a fresh process with ``env`` added: images/s, kernel s, faults.
    ``size``: square input side (the network's own channels); default the network's own input."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    args = ["benchmark", model, "--train", "--batch-size", str(batch), "--precision", precision, "--json"]
    if size:
        from moderncnn.registry import get_model_info

        args += ["--input", f"{get_model_info(model).in_channels}x{size}x{size}"]
    done = subprocess.run(
        [*CLI, *args, "--repeats", str(repeats)], capture_output=True, text=True, env={**os.environ, **env}
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{model} failed: {done.stderr.strip().splitlines()[-1:]}")
    rows = json.loads(done.stdout)
    row = rows[-1]  # with auto: what auto picks here (fp32 first, then bf16 where native)
    return {
        "images_per_sec": row["images_per_sec"],
        "precision": row["precision"],
        "kernel_s": after.ru_stime - before.ru_stime,
        "user_s": after.ru_utime - before.ru_utime,
        "minor_faults": after.ru_minflt - before.ru_minflt,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--case", action="append", metavar="MODEL:BATCH[:PX]", help="network, batch size and optionally the input "
        "side in pixels (repeatable; default: airbench94:2000 and vgg_d2l:512)"
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="times each allocator runs each case (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes inside each benchmark (default 3)")
    parser.add_argument("--precision", default="auto", help="as moderncnn benchmark's (default auto)")
    parser.add_argument(
        "--allocators", default=",".join(ALLOCATORS), help="comma-separated, from " + ", ".join(ALLOCATORS)
    )
    args = parser.parse_args(argv)
    chosen = {}
    for name in args.allocators.split(","):
        if name not in ALLOCATORS:
            parser.error(f"unknown allocator {name!r}; valid: {', '.join(ALLOCATORS)}")
        preload = ALLOCATORS[name].get("LD_PRELOAD")
        if preload and not Path(preload).is_file():
            print(f"{name}: skipped, {preload} is not installed (Debian: apt install libjemalloc2 / "
                  "libtcmalloc-minimal4)")  # fmt: skip
            continue
        chosen[name] = ALLOCATORS[name]
    for case in args.case or ["airbench94:2000", "vgg_d2l:512"]:
        model, _, rest = case.partition(":")
        batch, _, size = rest.partition(":")
        results: dict[str, list[dict]] = {name: [] for name in chosen}
        for _ in range(args.rounds):
            for name, env in chosen.items():
                row = run_case(model, int(batch or 128), env, args.repeats, args.precision, int(size) if size else None)
                results[name].append(row)
        base = statistics.median(r["images_per_sec"] for r in results["glibc"]) if "glibc" in results else None
        at = f", {size} px" if size else ""
        print(f"\n{model}, batch {batch}{at}, {results[next(iter(chosen))][0]['precision']}:")
        print("| allocator | images/s (each round) | vs glibc | kernel s | user s | minor faults |")
        print("|---|---|--:|--:|--:|--:|")
        for name, rows in results.items():
            speed = statistics.median(r["images_per_sec"] for r in rows)
            ratio = f"{speed / base:.2f}x" if base else ""
            each = ", ".join(f"{r['images_per_sec']:.1f}" for r in rows)
            kernel = statistics.median(r["kernel_s"] for r in rows)
            user = statistics.median(r["user_s"] for r in rows)
            faults = statistics.median(r["minor_faults"] for r in rows)
            print(f"| {name} | {each} | {ratio} | {kernel:.1f} | {user:.1f} | {faults:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
