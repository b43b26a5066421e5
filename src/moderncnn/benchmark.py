"""How fast each network trains and infers on this machine: images/second, peak memory, achieved GFLOP/s.

``benchmark(["resnet20", "lenet_bn"])`` times each network at its default input (or ``input``) on random data, in
fp32 and in what ``precision="auto"`` picks here (``run.speed``), for a training step (forward, cross-entropy,
backward, SGD update) and for inference (eval mode, no gradients). Warm-up passes are excluded; each figure is the
median of several timed passes, each pass as many steps as fill ``min_pass_s``. Memory is the peak growth of the
process's resident set during the case on the CPU, the peak allocated by torch on CUDA. GFLOP/s are the network's
FLOPs times images/second, counted by ``torch.utils.flop_counter`` (a multiply-add counts two): a training image is
one forward and one backward pass (``summarize.count_training_flops``). Each row also gives the fraction of the
hardware's peak for that precision: on the CPU the peak is measured (:func:`cpu_peak`: the faster of a large matrix
product and a wide 3x3 convolution, timed once per machine, thread count and torch version, and cached), on CUDA it
is the data sheet's for the GPUs listed in :data:`PEAK_TFLOPS`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from moderncnn.errors import UsageError
from moderncnn.registry import create_model, get_model_info
from moderncnn.summarize import count_flops, count_training_flops

MODES = ("train", "infer")
PEAK_MATMUL_SIZE = 2048  # square bf16/fp32 products this size run at the CPU's BLAS peak (measured on 2 and 16 cores)
PEAK_CONV = (128, 256, 8)  # batch, channels in and out, height = width: a wide 3x3 layer (airbench94's last group)

# Dense tensor-core (or plain fp32) peak TFLOP/s from the vendors' data sheets, by a part of the device name;
# "32" is the non-tensor-core fp32 rate. Boost clocks, SXM parts where a PCIe one differs.
PEAK_TFLOPS = {
    "H200": {"bf16-mixed": 989.0, "16-mixed": 989.0, "32": 67.0},
    "H100": {"bf16-mixed": 989.0, "16-mixed": 989.0, "32": 67.0},
    "A100": {"bf16-mixed": 312.0, "16-mixed": 312.0, "32": 19.5},
    "L4": {"bf16-mixed": 121.0, "16-mixed": 121.0, "32": 30.3},
    "V100": {"16-mixed": 125.0, "32": 15.7},
    "T4": {"16-mixed": 65.0, "32": 8.1},
}


def peak_tflops(device_name: str, precision: str) -> float | None:
    """The data-sheet peak of a GPU named ``device_name`` at ``precision``, if listed."""
    for part, peaks in PEAK_TFLOPS.items():
        if part in device_name:
            return peaks.get(precision)
    return None


def cpu_peak(precision: str, *, refresh: bool = False, seconds: float = 1.0) -> float:
    """This CPU's measured peak in GFLOP/s at ``precision`` (``32`` or ``bf16-mixed``): the best rate, over passes of
    ``seconds`` with the current torch thread count, of the two dense kernels a network's time goes to.

    - a ``PEAK_MATMUL_SIZE`` square matrix product (BLAS);
    - a 3x3 convolution of :data:`PEAK_CONV` (oneDNN), channels-last, which on some CPUs runs well above the matrix
      product (measured on an AMD EPYC with 2 threads: fp32 180 GFLOP/s against 120), so a product alone would
      put a network's training above "100% of peak".

    The figure is cached in ``~/.cache/moderncnn/cpu-peak.json`` per CPU model, thread count and torch version
    (measuring takes a few seconds); ``refresh`` measures again.
    """
    dtype = {"32": torch.float32, "bf16-mixed": torch.bfloat16}.get(precision)
    if dtype is None:
        raise UsageError(f"the CPU peak is measured for 32 and bf16-mixed, not {precision!r}")
    key = f"{_cpu_model()}|{torch.get_num_threads()} threads|torch {torch.__version__}|{precision}|matmul+conv"
    path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "moderncnn" / "cpu-peak.json"
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if key in cached and not refresh:
        return cached[key]
    n = PEAK_MATMUL_SIZE
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    batch, channels, size = PEAK_CONV
    x = torch.randn(batch, channels, size, size, dtype=dtype).to(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3, dtype=dtype).to(memory_format=torch.channels_last)
    kernels = (
        (lambda: a @ b, 2 * n**3),
        (lambda: F.conv2d(x, w, padding=1), 2 * batch * channels * channels * 9 * size * size),
    )
    best = 0.0
    for kernel, flops in kernels:
        for _ in range(3):
            kernel()  # warm-up, then as many calls as fill the pass
            count, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds or count == 0:
                kernel()
                count += 1
            best = max(best, flops * count / elapsed / 1e9)
    cached[key] = round(best, 1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cached, indent=2))
    except OSError:  # a read-only home: measure again next time
        pass
    return cached[key]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class _PeakRSS:
    """Largest resident set of this process while in the ``with`` block, sampled every 5 ms (Linux), in bytes."""

    def __enter__(self) -> _PeakRSS:
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096
        except OSError:  # not Linux: the process's peak so far (kilobytes on Linux, bytes on macOS)
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return peak if sys.platform == "darwin" else peak * 1024


def _time_passes(step: Callable[[], None], sync: Callable[[], None], repeats: int, min_pass_s: float) -> float:
    """Median seconds per step over ``repeats`` passes, after two warm-up steps."""
    for _ in range(2):
        step()
    sync()
    per_step = []
    for _ in range(repeats):
        steps, start = 0, time.perf_counter()
        while True:
            step()
            steps += 1
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= min_pass_s:
                break
        per_step.append(elapsed / steps)
    return statistics.median(per_step)


def benchmark_one(
    model: str,
    *,
    input: tuple[int, int, int] | None = None,
    batch_size: int | None = None,
    precision: str = "32",
    channels_last: bool = False,
    modes: Sequence[str] = MODES,
    device: str | torch.device = "cpu",
    model_kwargs: dict | None = None,
    repeats: int = 5,
    min_pass_s: float = 0.5,
) -> list[dict]:
    """Rows for one network at one precision (see :func:`benchmark`)."""
    info = get_model_info(model)
    channels, height, width = input or (info.in_channels, info.input_size, info.input_size)
    kwargs = dict(model_kwargs or {})
    if info.fixed_input_size:
        kwargs.setdefault("input_size", height)  # the classifier sized for this input, as training does
    device = torch.device(device)
    torch.manual_seed(0)
    net = create_model(model, num_classes=10, in_channels=channels, **kwargs)
    flops = count_flops(net, (1, channels, height, width))
    with torch.device("meta"):  # counted on a copy: a training pass would move the BatchNorm statistics
        train_flops = count_training_flops(create_model(model, 10, channels, **kwargs), (1, channels, height, width))
    memory = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(device, memory_format=memory)
    if batch_size is None:
        from moderncnn.run.config import default_settings

        batch_size = default_settings(model).get("batch_size", 256)
    x = torch.randn(batch_size, channels, height, width, device=device).contiguous(memory_format=memory)
    y = torch.randint(0, 10, (batch_size,), device=device)
    half = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    autocast = torch.autocast(device.type, dtype=half or torch.float32, enabled=half is not None)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def train_step() -> None:
        with autocast:
            out = net(x)
            loss = F.cross_entropy(out[0] if isinstance(out, tuple) else out, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def infer_step() -> None:
        with torch.no_grad(), autocast:
            net(x)

    rows = []
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    if cuda:
        peak = peak_tflops(name, precision)
        peak = peak * 1000 if peak else None
    else:
        peak = cpu_peak(precision) if precision in ("32", "bf16-mixed") else None
    for mode in modes:
        net.train(mode == "train")
        if cuda:
            sync()
            torch.cuda.reset_peak_memory_stats(device)
        with _PeakRSS() as rss:
            seconds = _time_passes(train_step if mode == "train" else infer_step, sync, repeats, min_pass_s)
        peak_bytes = torch.cuda.max_memory_allocated(device) if cuda else rss.peak - rss.start
        rate = batch_size / seconds
        per_image = train_flops if mode == "train" else flops
        achieved = per_image * rate / 1e9
        rows.append(
            {
                "model": model,
                "mode": mode,
                "input": f"{channels}x{height}x{width}",
                "batch_size": batch_size,
                "precision": precision,
                "channels_last": channels_last,
                "images_per_sec": round(rate, 1),
                "ms_per_step": round(seconds * 1000, 4),
                "peak_memory_mib": round(peak_bytes / 2**20, 1),
                "gflop_per_image": round(per_image / 1e9, 4),
                "gflops": round(achieved, 2),
                "peak_gflops": peak,
                "peak_fraction": round(achieved / peak, 4) if peak else None,
                "device": name,
            }
        )
    return rows


def benchmark(
    models: Sequence[str],
    input: tuple[int, int, int] | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    modes: Sequence[str] = MODES,
    *,
    device: str | None = None,
    model_kwargs: dict | None = None,
    repeats: int = 5,
    min_pass_s: float = 0.5,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train and inference speed of each network, in fp32 and (where it differs) in what ``auto`` picks here.

    Args:
        models: registry names.
        input: ``(channels, height, width)``; default: each network's own input.
        batch_size: images per step; default: each network's training batch size (``run.config``).
        precision: ``auto`` (rows for plain fp32 and, where it differs, for the choice of ``run.speed`` with its
            memory format), or one of ``32``, ``bf16-mixed``, ``16-mixed`` (one row per mode, channels_last with
            bf16/16).
        modes: ``train`` and/or ``infer``.
        device: ``cpu``, ``cuda`` or ``cuda:N`` (default: CUDA when available).
        model_kwargs: options for every network (e.g. ``{"width_ratio": 4}`` for the textbook's small VGG).
        repeats: timed passes per figure (the median is reported).
        min_pass_s: seconds each timed pass lasts at least.
        log: called with a line as each network starts.

    Returns:
        One dict per network, precision and mode (see :func:`benchmark_one` for the keys).
    """
    from moderncnn.constants import PRECISIONS
    from moderncnn.run.speed import detect_hardware, resolve

    if not models:
        raise UsageError("name at least one network to benchmark (see `moderncnn models`)")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise UsageError(f"modes must be train and/or infer, got {', '.join(bad) or 'none'}")
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise UsageError(f"batch_size must be a positive number of images, got {batch_size!r}")
    for model in models:
        get_model_info(model)  # an unknown name fails before anything is timed
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    hardware = detect_hardware("cuda" if device.startswith("cuda") else "cpu")
    if precision == "auto":
        auto = resolve("auto", "auto", "false", hardware=hardware)
        chosen = (auto.precision, auto.channels_last)
        settings = [("32", False)] + ([chosen] if chosen != ("32", False) else [])
    else:
        settings = [(precision, precision != "32")]
    if any(p == "16-mixed" for p, _ in settings) and not device.startswith("cuda"):
        raise UsageError("precision 16-mixed needs a GPU (fp16 autocast is not supported on the CPU); use bf16-mixed")
    rows = []
    for model in models:
        if log:
            log(f"{model}: {', '.join(p + (' channels_last' if cl else '') for p, cl in settings)} on {device}")
        for chosen, channels_last in settings:
            rows += benchmark_one(
                model,
                input=input,
                batch_size=batch_size,
                precision=chosen,
                channels_last=channels_last,
                modes=modes,
                device=device,
                model_kwargs=model_kwargs,
                repeats=repeats,
                min_pass_s=min_pass_s,
            )
    return rows
