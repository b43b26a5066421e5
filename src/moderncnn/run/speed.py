"""Execution chosen for the hardware: precision, memory format, compilation and CPU threads.

:func:`resolve` turns the requested speed settings, any of them ``auto``, into the values a run uses, with a
one-line reason for the log (``bf16-mixed, channels_last, compiled: chosen for this CPU (avx512_bf16)``). It is
pure: the hardware comes in as a :class:`Hardware` (:func:`detect_hardware` reads it through torch), so what is
chosen on any machine can be tested on this one. Nothing here imports Lightning; torch only inside functions.

What ``auto`` means:

- precision: ``bf16-mixed`` where the device computes bf16 natively (a CUDA GPU with bf16 tensor cores, a CPU
  with AVX-512 BF16 or AMX), ``16-mixed`` on an older CUDA GPU with fp16 tensor cores, else ``32``. Always ``32``
  with ``deterministic``.
- channels_last: on the CPU always (oneDNN's convolutions work in NHWC; every registered network is convolutional),
  on CUDA with a mixed precision (tensor-core convolutions); never with ``deterministic``. Measured here (2-core
  CPU, one thread, training steps, benchmarks/RESULTS.md): resnet20 fp32 1.26-1.39x and bf16 1.07-1.09x faster
  than contiguous; lenet_bn, whose convolutions are tiny, 0.92-1.0x.
- compile: when the run has enough steps to repay the compile time (:data:`COMPILE_MIN_STEPS`), never for a
  ``limit_batches`` run, with ``deterministic``, or where no C++ compiler is found (inductor needs one on the CPU).
- threads (CPU): adaptive (``adaptive_threads``): one intra-op thread per core while the machine is free, fewer
  while other processes keep cores busy (:class:`moderncnn.engine.threads.ThreadGovernor`), because spinning
  OpenMP and oneDNN threads collapse to a tenth of their speed on a shared CPU. The thread count changes the order
  of floating-point sums, so a ``deterministic`` run keeps a fixed count (torch's default, one per core) instead;
  so does a given ``threads``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from moderncnn.constants import PRECISIONS
from moderncnn.errors import ConfigError

# Training steps from which `compile: auto` compiles: the compile time over the per-step gain, measured with
# benchmarks/compile_break_even.py (2-core x86_64 CPU with AVX-512 BF16, torch 2.14.1, bf16-mixed + channels_last,
# machine otherwise idle, empty inductor cache as on a network's first run; 2026-11-30): resnet20 at 32 px, batch 128:
# 54 s of compiling for 0.129 -> 0.127 s per step (2%; with a warm cache a second run measured the compiled step
# slower, so the gain is within noise): break-even after about 21,000 steps (60 CIFAR-10 epochs); lenet_bn at 28 px,
# batch 256: 35 s for 0.0166 -> 0.0136 s per step (18%): about 11,800 steps (50 Fashion-MNIST epochs). The rule takes
# the larger, so that a compiled run is not slower end to end for either. CUDA is not measured yet (no GPU was lent):
# the same count stands until this script has run on one.
COMPILE_MIN_STEPS = {"cpu": 21_000, "cuda": 21_000}


@dataclass(frozen=True)
class Hardware:
    """What the speed choices depend on.

    Attributes:
        kind: ``"cpu"`` or ``"cuda"``.
        name: the processor's or GPU's name, for the log.
        bf16: the feature that makes bf16 native (``"avx512_bf16"``, ``"amx"``, ``"sm_90"``), ``""`` if none.
        fp16: fp16 tensor cores (CUDA compute capability 7.0 or newer).
        cores: intra-op threads torch uses by default (:func:`default_threads`).
        compiler: a C++ compiler was found (``torch.compile`` needs one on the CPU).
    """

    kind: str
    name: str = ""
    bf16: str = ""
    fp16: bool = False
    cores: int = 1
    compiler: bool = True


def default_threads() -> int:
    """torch's own default intra-op thread count: ``OMP_NUM_THREADS`` when set, else one per physical core.

    Not ``torch.get_num_threads()``, which a governor of an earlier run in the same process may have lowered.
    """
    import torch

    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return int(torch.cpu.get_capabilities()["num_physical_cores"]) or torch.get_num_threads()
    except (AttributeError, KeyError, TypeError, ValueError):
        return torch.get_num_threads()


def cpu_bf16_feature() -> str:
    """``"amx"`` or ``"avx512_bf16"`` when this CPU computes bf16 natively (asked of torch), else ``""``."""
    import torch

    capabilities = getattr(torch.cpu, "get_capabilities", None)  # public in recent torch (2.14 has it)
    if capabilities is not None:
        found = capabilities()
        return "amx" if found.get("amx_bf16") else "avx512_bf16" if found.get("avx512_bf16") else ""
    # Older torch: its private checks (what oneDNN dispatches on); a torch without them means "no".
    for feature, check in (("amx", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported")):
        try:
            if getattr(torch.cpu, check)():
                return feature
        except (AttributeError, RuntimeError):
            continue
    return ""


def detect_hardware(accelerator: str = "auto") -> Hardware:
    """The hardware a run with this ``accelerator`` setting (``auto``, ``cpu``, ``gpu``, ``cuda``) trains on."""
    import torch

    compiler = any(shutil.which(c) for c in ("c++", "g++", "clang++"))
    cores = default_threads()
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        bf16 = f"sm_{major}{minor}" if torch.cuda.is_bf16_supported(including_emulation=False) else ""
        return Hardware("cuda", torch.cuda.get_device_name(0), bf16, major >= 7, cores, compiler)
    try:
        name = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        name = ""
    return Hardware("cpu", f"CPU {name}".strip(), cpu_bf16_feature(), False, cores, compiler)


@dataclass(frozen=True)
class Speed:
    """The resolved speed settings of a run, and why (``reason``, one line for the log)."""

    precision: str
    channels_last: bool
    compile: bool
    threads: int | None
    reason: str
    adaptive_threads: bool = False

    def settings(self) -> dict:
        """The values to write into the run's settings (``config.yaml``): precision, channels_last, compile, threads.

        ``threads`` stays ``None`` where the count is adaptive (CPU) or left to torch (CUDA).
        """
        return {k: getattr(self, k) for k in ("precision", "channels_last", "compile", "threads")}


def parse_switch(value: str | bool | None, name: str) -> bool | None:
    """``auto`` (or ``None``) → ``None``; ``true``/``false`` (any case) or a bool → that bool."""
    if value is None or value == "auto":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"{name} must be auto, true or false, got {value!r}; leave it out for auto")


def _device_words(hw: Hardware) -> str:
    where = "this CPU" if hw.kind == "cpu" else f"this GPU ({hw.name})" if hw.name else "this GPU"
    return f"{where} ({hw.bf16})" if hw.bf16 and hw.kind == "cpu" else where


def resolve(
    precision: str = "auto",
    channels_last: str | bool | None = "auto",
    compile: str | bool | None = "auto",
    threads: int | None = None,
    *,
    deterministic: bool = False,
    limit_batches: float | None = None,
    epochs: int = 1,
    steps_per_epoch: int | None = None,
    hardware: Hardware | None = None,
) -> Speed:
    """The speed settings a run uses, each ``auto`` one chosen for ``hardware`` (see the module docstring).

    Args:
        precision: ``auto``, ``32``, ``bf16-mixed`` or ``16-mixed``; an explicit value is kept.
        channels_last, compile: ``auto``, ``true`` or ``false`` (or a bool); an explicit value is kept.
        threads: intra-op CPU threads; ``None``: adaptive on the CPU (see the module docstring), torch's on CUDA.
        deterministic: the run must be repeatable bit for bit: fp32, contiguous, eager, a fixed thread count.
        limit_batches: set for a short check (``--limit-batches``): never compiled.
        epochs, steps_per_epoch: the run's length in optimiser steps (``None``: unknown, not compiled).
        hardware: where the run trains (default: :func:`detect_hardware`).

    Raises:
        ConfigError: a value outside the choices, or a thread count below 1.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a whole number of at least 1 (or left out for one per core), got {threads}")
    want_cl, want_compile = parse_switch(channels_last, "channels_last"), parse_switch(compile, "compile")
    hw = hardware or detect_hardware()
    why: list[str] = []

    if precision != "auto":
        chosen = precision
    elif deterministic:
        chosen = "32"
        why.append("fp32 for a deterministic run")
    elif hw.bf16:
        chosen = "bf16-mixed"
    elif hw.kind == "cuda" and hw.fp16:
        chosen = "16-mixed"
    else:
        chosen = "32"
        why.append(f"fp32: {_device_words(hw)} has no native bf16")

    nhwc = not deterministic and (hw.kind == "cpu" or chosen != "32")
    use_cl = want_cl if want_cl is not None else nhwc

    steps = epochs * steps_per_epoch if steps_per_epoch is not None else None
    needed = COMPILE_MIN_STEPS.get(hw.kind, COMPILE_MIN_STEPS["cpu"])
    if want_compile is not None:
        use_compile = want_compile
    elif deterministic:
        use_compile = False
    elif limit_batches is not None:
        use_compile = False
        why.append("not compiled: a limit_batches run is too short to repay compiling")
    elif hw.kind == "cpu" and not hw.compiler:
        use_compile = False
        why.append("not compiled: no C++ compiler found (torch.compile needs one on the CPU)")
    elif steps is None or steps < needed:
        use_compile = False
        length = f"{steps:,} steps" if steps is not None else "an unknown number of steps"
        why.append(f"not compiled: {length}, fewer than the {needed:,} that repay compiling")
    else:
        use_compile = True

    if threads is None and deterministic and hw.kind == "cpu":
        threads = hw.cores  # a fixed count: the order of floating-point sums depends on it
    adaptive = threads is None and hw.kind == "cpu"
    head = ", ".join(
        [chosen, "channels_last" if use_cl else "contiguous", "compiled" if use_compile else "eager"]
        + ([f"{threads} threads"] if threads is not None else [])
    )
    auto = [precision == "auto", want_cl is None, want_compile is None]
    if any(auto) and not why:
        why.append(f"chosen for {_device_words(hw)}")
    elif any(auto) and chosen != "32" and precision == "auto":
        why.insert(0, f"chosen for {_device_words(hw)}")
    if not all(auto):
        given = [n for n, a in zip(("precision", "channels_last", "compile"), auto, strict=True) if not a]
        why.append(f"{', '.join(given)} as given")
    return Speed(chosen, bool(use_cl), use_compile, threads, f"{head}: {'; '.join(why)}", adaptive)
