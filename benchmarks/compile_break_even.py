"""After how many training steps ``torch.compile`` repays its compile time, for one network at its training size.

A run compiles the network three times: the training graph, the evaluation graph (BatchNorm in eval mode, no
gradients) and, for the last evaluation batch of another size, a dynamic-shape graph. This script times each
first compiled call against the same call in eager mode, and the steady training step of both, then prints
``compile seconds / per-step gain``: the break-even behind ``COMPILE_MIN_STEPS`` in ``moderncnn.run.speed``.

    python benchmarks/compile_break_even.py [--model resnet20] [--batch-size 128] [--precision bf16-mixed] [--warm]

Random data (no dataset needed). Settings as ``auto`` picks them on this CPU unless given; one network per run,
one to two minutes each on 2 cores. Compiling starts from an empty inductor cache (a new temporary folder), as a
network's first run on a machine does; ``--warm`` keeps the user's cache (later runs of the same network).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

if "--warm" not in sys.argv:  # before torch loads: inductor's compiled kernels go to a fresh cache
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")

import torch
import torch.nn.functional as F

from moderncnn import create_model, get_model_info


def timed(fn, repeats: int = 1) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def measure(model: str, batch: int, precision: str, channels_last: bool, compiled: bool, steps: int) -> dict:
    torch.manual_seed(0)
    info = get_model_info(model)
    net = create_model(model, num_classes=10, in_channels=info.in_channels)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory)
    if compiled:
        net.compile()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    shape = (batch, info.in_channels, info.input_size, info.input_size)
    x = torch.randn(shape).contiguous(memory_format=memory)
    y = torch.randint(0, 10, (batch,))
    tail = x[: batch // 3 + 1]  # the last, smaller evaluation batch
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed")

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def evaluate(images: torch.Tensor):
        def run() -> None:
            net.eval()
            with torch.no_grad(), autocast:
                net(images)
            net.train()

        return run

    first_step = timed(step)[0]
    first_eval = timed(evaluate(x))[0]
    first_tail = timed(evaluate(tail))[0]
    # The fastest of several steps: on a shared machine the others are slowed by whatever else runs at that moment.
    steady = min(timed(step, steps))
    steady_eval = min(timed(evaluate(x), 3))
    steady_tail = min(timed(evaluate(tail), 3))
    overhead = (first_step - steady) + (first_eval - steady_eval) + (first_tail - steady_tail)
    return {"first_calls_extra_s": overhead, "step_s": steady}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, help="default: the network's training batch size")
    parser.add_argument("--precision", default=None, help="32 or bf16-mixed (default: what auto picks here)")
    parser.add_argument("--channels-last", choices=["true", "false"], help="default: what auto picks here")
    parser.add_argument("--steps", type=int, default=15, help="timed steady training steps (the fastest counts)")
    parser.add_argument("--warm", action="store_true", help="use the existing inductor cache")
    args = parser.parse_args()
    from moderncnn.engine.threads import machine_busy_seconds
    from moderncnn.run.config import default_settings
    from moderncnn.run.speed import resolve

    before = machine_busy_seconds()
    time.sleep(2)
    load = (machine_busy_seconds() - before) / 2 if before is not None else float("nan")
    print(f"other processes kept {load:.2f} CPUs busy before the start (the machine should be idle)")
    speed = resolve(args.precision or "auto", args.channels_last or "auto", "false")
    batch = args.batch_size or default_settings(args.model).get("batch_size", 256)
    cache = "warm (existing)" if args.warm else "cold (empty)"
    print(f"{args.model}, batch {batch}, {speed.reason}, {torch.get_num_threads()} threads, {cache} inductor cache")
    eager = measure(args.model, batch, speed.precision, speed.channels_last, False, args.steps)
    compiled = measure(args.model, batch, speed.precision, speed.channels_last, True, args.steps)
    compile_s = compiled["first_calls_extra_s"] - eager["first_calls_extra_s"]
    gain = eager["step_s"] - compiled["step_s"]
    print(f"compile time {compile_s:.1f} s; step {eager['step_s']:.4f} s eager, {compiled['step_s']:.4f} s compiled")
    if gain > 0:
        print(f"break-even after {compile_s / gain:,.0f} training steps")
    else:
        print("compiled steps are not faster: compiling never repays here")


if __name__ == "__main__":
    main()
