"""Training speed on a shared CPU: one run alone, then beside a second identical run, for each thread setting.

Each case starts worker processes that train one network on random data (forward, cross-entropy, backward, SGD),
first one alone, then two at once; their timed windows are synchronised (both wait for the same start time after
their warm-up, and keep training a little after their window closes, so each window is fully shared). Printed per
setting: images/sec alone, each of the pair, and the pair's mean as a fraction of the alone figure and of the best
alone figure of all settings (what a user keeps when a second run starts beside the fastest setting).

Settings (``--settings``, comma-separated):
    default   torch's defaults: one intra-op thread per core, OpenMP's default wait policy
    passive   OMP_WAIT_POLICY=PASSIVE (set before torch loads): waiting threads sleep instead of spinning
    one       torch.set_num_threads(1)
    governor  moderncnn.engine.threads.ThreadGovernor: one thread per free core, re-checked every 2 s
    passive+governor  both

    python benchmarks/shared_cpu.py [--model resnet20] [--precision auto] [--seconds 10] [--settings default,governor]

The default run takes about 1.5 minutes on 2 cores. The machine must be otherwise idle: the script measures the load
of other processes for 2 s first and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SETTINGS = {
    "default": ({}, False, None),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, False, None),
    "one": ({}, False, 1),
    "governor": ({}, True, None),
    "passive+governor": ({"OMP_WAIT_POLICY": "PASSIVE"}, True, None),
}


def worker(args: argparse.Namespace) -> None:
    """One training process: warm up, wait for the common start, time ``seconds``, keep going ``tail`` seconds."""
    import torch
    import torch.nn.functional as F

    from moderncnn import create_model, get_model_info
    from moderncnn.engine.threads import ThreadGovernor

    if args.threads:
        torch.set_num_threads(args.threads)
    governor = ThreadGovernor() if args.governor else None
    info = get_model_info(args.model)
    net = create_model(args.model, num_classes=10, in_channels=info.in_channels)
    bf16 = args.precision == "bf16-mixed"
    memory = torch.channels_last if bf16 else torch.contiguous_format
    net = net.to(memory_format=memory)
    x = torch.randn(args.batch_size, info.in_channels, info.input_size, info.input_size).contiguous(
        memory_format=memory
    )
    y = torch.randint(0, 10, (args.batch_size,))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if governor is not None:
            governor.tick()

    for _ in range(3):
        step()
    time.sleep(max(0.0, args.start_at - time.time()))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        step()
        steps += 1
    rate = steps * args.batch_size / (time.perf_counter() - start)
    end = time.perf_counter() + args.tail
    while time.perf_counter() < end:
        step()
    print(json.dumps({"images_per_sec": rate, "threads": torch.get_num_threads()}))


def others_load(seconds: float = 2.0) -> float | None:
    """CPUs kept busy by other processes, on average over ``seconds`` (this script is idle meanwhile)."""
    from moderncnn.engine.threads import machine_busy_seconds

    before = machine_busy_seconds()
    time.sleep(seconds)
    after = machine_busy_seconds()
    return None if before is None or after is None else (after - before) / seconds


def run_case(args: argparse.Namespace, setting: str, copies: int) -> list[dict]:
    env_extra, governor, threads = SETTINGS[setting]
    env = {**os.environ, **env_extra}
    start_at = time.time() + args.startup
    command = [sys.executable, __file__, "--worker", "--model", args.model, "--precision", args.precision]
    command += ["--batch-size", str(args.batch_size), "--seconds", str(args.seconds), "--start-at", str(start_at)]
    command += ["--tail", "2" if copies > 1 else "0"]
    command += ["--governor"] * governor + (["--threads", str(threads)] if threads else [])
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    outputs = [p.communicate()[0] for p in processes]
    if any(p.returncode for p in processes):
        raise SystemExit(f"a worker failed in setting {setting}")
    return [json.loads(out.strip().splitlines()[-1]) for out in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--precision", default="auto", help="32, bf16-mixed or auto (what moderncnn picks here)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per run")
    parser.add_argument("--settings", default="default,governor", help=f"comma-separated: {', '.join(SETTINGS)}")
    parser.add_argument("--startup", type=float, default=8.0, help="seconds allowed for import and warm-up")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--tail", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--governor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.precision == "auto":
        from moderncnn.run.speed import resolve

        args.precision = resolve("auto", compile="false").precision
    settings = args.settings.split(",")
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; valid: {', '.join(SETTINGS)}")
    load = others_load()
    print(f"{args.model}, batch {args.batch_size}, {args.precision}, {os.cpu_count()} CPUs, {args.seconds:g} s timed")
    print(f"other processes kept {load:.2f} CPUs busy before the start" if load is not None else "load unknown")
    results = {}
    for setting in settings:
        alone = run_case(args, setting, 1)[0]["images_per_sec"]
        pair = run_case(args, setting, 2)
        results[setting] = (alone, [r["images_per_sec"] for r in pair], [r["threads"] for r in pair])
    best = max(alone for alone, _, _ in results.values())
    print("\n| setting | alone img/s | beside a second run img/s | shared / alone | shared / best alone |")
    print("|---|--:|--:|--:|--:|")
    for setting, (alone, pair, threads) in results.items():
        mean = sum(pair) / len(pair)
        shown = " and ".join(f"{r:,.0f}" for r in pair)
        ratios = f"{mean / alone:.0%} | {mean / best:.0%}"
        print(f"| {setting} (threads at the end: {threads}) | {alone:,.0f} | {shown} | {ratios} |")


if __name__ == "__main__":
    main()
