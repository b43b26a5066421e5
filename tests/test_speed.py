"""The speed choices (``run/speed.py``): what ``auto`` picks on each kind of hardware, and what it keeps."""

import os

import pytest
import torch

from moderncnn.engine import threads
from moderncnn.errors import ConfigError
from moderncnn.run.speed import COMPILE_MIN_STEPS, Hardware, detect_hardware, resolve

CPU_BF16 = Hardware("cpu", "CPU AVX512", bf16="avx512_bf16", cores=2)
CPU_AMX = Hardware("cpu", "CPU AVX512", bf16="amx", cores=56)
CPU_PLAIN = Hardware("cpu", "CPU AVX2", cores=8)
H100 = Hardware("cuda", "NVIDIA H100 80GB HBM3", bf16="sm_90", fp16=True)
V100 = Hardware("cuda", "Tesla V100-SXM2-16GB", fp16=True)
P100 = Hardware("cuda", "Tesla P100", fp16=False)
LONG = {"epochs": 2, "steps_per_epoch": max(COMPILE_MIN_STEPS.values())}  # past the break-even everywhere


def test_cpu_with_bf16_gets_bf16_channels_last_compiled_and_says_why():
    chosen = resolve(hardware=CPU_BF16, **LONG)
    assert (chosen.precision, chosen.channels_last, chosen.compile) == ("bf16-mixed", True, True)
    assert chosen.reason == "bf16-mixed, channels_last, compiled: chosen for this CPU (avx512_bf16)"
    assert resolve(hardware=CPU_AMX, **LONG).reason.endswith("chosen for this CPU (amx)")


def test_cpu_without_bf16_stays_fp32_with_channels_last():
    chosen = resolve(hardware=CPU_PLAIN, **LONG)
    assert (chosen.precision, chosen.channels_last, chosen.compile) == ("32", True, True)
    assert chosen.reason == "32, channels_last, compiled: fp32: this CPU has no native bf16"


def test_cuda_with_bf16_gets_bf16_and_older_tensor_cores_get_fp16():
    assert resolve(hardware=H100, **LONG).settings() == {
        "precision": "bf16-mixed",
        "channels_last": True,
        "compile": True,
        "threads": None,
    }
    assert "this GPU (NVIDIA H100" in resolve(hardware=H100, **LONG).reason
    v100 = resolve(hardware=V100, **LONG)
    assert (v100.precision, v100.channels_last) == ("16-mixed", True)
    p100 = resolve(hardware=P100, **LONG)  # no tensor cores: half precision would not be faster
    assert (p100.precision, p100.channels_last) == ("32", False)


@pytest.mark.parametrize("hardware", [CPU_BF16, CPU_PLAIN, H100])
def test_limit_batches_runs_are_never_compiled(hardware):
    chosen = resolve(hardware=hardware, limit_batches=2, **LONG)
    assert not chosen.compile
    assert "limit_batches" in chosen.reason


def test_compiles_only_from_the_break_even_step_count():
    needed = COMPILE_MIN_STEPS["cpu"]
    assert not resolve(hardware=CPU_BF16, epochs=1, steps_per_epoch=needed - 1).compile
    assert resolve(hardware=CPU_BF16, epochs=1, steps_per_epoch=needed).compile
    assert resolve(hardware=CPU_BF16, epochs=needed, steps_per_epoch=1).compile
    short = resolve(hardware=CPU_BF16, epochs=2, steps_per_epoch=40)
    assert "not compiled: 80 steps" in short.reason
    assert not resolve(hardware=CPU_BF16, epochs=100).compile  # steps unknown: not compiled


def test_no_compiler_no_compile_on_the_cpu():
    chosen = resolve(hardware=Hardware("cpu", bf16="avx512_bf16", compiler=False), **LONG)
    assert not chosen.compile
    assert "C++ compiler" in chosen.reason


@pytest.mark.parametrize("hardware", [CPU_BF16, H100])
def test_deterministic_and_precision_32_mean_plain_fp32(hardware):
    det = resolve(hardware=hardware, deterministic=True, **LONG)
    assert (det.precision, det.channels_last, det.compile) == ("32", False, False)
    assert "deterministic" in det.reason
    fp32 = resolve("32", hardware=hardware, **LONG)  # fp32 asked for: NHWC still on the CPU, not on a GPU
    assert (fp32.precision, fp32.channels_last) == ("32", hardware.kind == "cpu")


def test_explicit_values_are_kept():
    chosen = resolve("bf16-mixed", "false", "true", 3, hardware=CPU_PLAIN, limit_batches=2, epochs=1)
    assert chosen.settings() == {"precision": "bf16-mixed", "channels_last": False, "compile": True, "threads": 3}
    assert chosen.reason.startswith("bf16-mixed, contiguous, compiled, 3 threads:")
    assert "precision, channels_last, compile as given" in chosen.reason
    chosen = resolve("32", True, False, hardware=H100, **LONG)  # bools as a config file holds them
    assert (chosen.precision, chosen.channels_last, chosen.compile) == ("32", True, False)
    det = resolve("bf16-mixed", "true", "true", hardware=CPU_BF16, deterministic=True, **LONG)
    assert (det.precision, det.channels_last, det.compile) == ("bf16-mixed", True, True)


@pytest.mark.parametrize(
    "kwargs",
    [{"precision": "bf16"}, {"channels_last": "maybe"}, {"compile": "fast"}, {"threads": 0}, {"threads": 1.5}],
)
def test_invalid_values_are_refused_in_one_line(kwargs):
    with pytest.raises(ConfigError, match="must be"):
        resolve(hardware=CPU_BF16, **kwargs)


def test_cpu_detection_asks_torch(monkeypatch):
    def capabilities(**found):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"num_physical_cores": 4, **found}, raising=False)

    capabilities(avx512_bf16=True, amx_bf16=False)
    assert detect_hardware("cpu").bf16 == "avx512_bf16"
    capabilities(avx512_bf16=True, amx_bf16=True)
    assert detect_hardware("cpu").bf16 == "amx"
    capabilities(avx512_bf16=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    hw = detect_hardware("cpu")
    assert (hw.kind, hw.bf16, hw.cores) == ("cpu", "", 4)  # torch's default: one thread per physical core
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert detect_hardware("cpu").cores == 3  # or what the user set
    # A torch without get_capabilities: its private checks.
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert detect_hardware("cpu").bf16 == "avx512_bf16"
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert detect_hardware("cpu").bf16 == ""


def test_cuda_detection_asks_torch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA A100-SXM4-40GB")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (8, 0))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: not including_emulation)
    hw = detect_hardware("auto")
    assert (hw.kind, hw.name, hw.bf16, hw.fp16) == ("cuda", "NVIDIA A100-SXM4-40GB", "sm_80", True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert detect_hardware("gpu").bf16 == ""  # emulated bf16 (pre-Ampere) is not native
    assert detect_hardware("cpu").kind == "cpu"


def test_this_machine_is_detected_as_torch_reports_it():
    capability = torch.backends.cpu.get_cpu_capability()
    hw = detect_hardware("cpu")
    assert hw.kind == "cpu" and capability in hw.name
    # torch's private checks (what oneDNN dispatches on) agree with the public capabilities read by the detection.
    assert bool(hw.bf16) == (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def test_threads_adapt_on_the_cpu_unless_fixed_by_the_user_or_determinism():
    assert resolve(hardware=CPU_BF16, **LONG).adaptive_threads
    assert resolve(hardware=CPU_BF16, **LONG).settings()["threads"] is None
    given = resolve(threads=1, hardware=CPU_BF16, **LONG)
    assert (given.threads, given.adaptive_threads) == (1, False)
    # The thread count changes the order of floating-point sums: a deterministic run keeps torch's default count.
    det = resolve(hardware=CPU_BF16, deterministic=True, **LONG)
    assert (det.threads, det.adaptive_threads) == (CPU_BF16.cores, False)
    assert det.reason.startswith("32, contiguous, eager, 2 threads:")
    gpu = resolve(hardware=H100, deterministic=True, **LONG)
    assert (gpu.threads, gpu.adaptive_threads) == (None, False)  # CPU threads are not what a GPU run depends on


def test_threads_for_leaves_the_cores_others_use():
    assert threads.threads_for(2, 2, others=0.1) == 2
    assert threads.threads_for(2, 2, others=1.0) == 1  # a second busy run on a 2-core machine
    assert threads.threads_for(2, 2, others=3.5) == 1  # never fewer than one
    assert threads.threads_for(8, 16, others=4.0) == 8  # never more than asked


def test_governor_gives_cores_back_and_takes_them_again():
    now, busy, own, applied = [0.0], [0.0], [0.0], []

    def advance(seconds, others, ours):
        now[0] += seconds
        busy[0] += (others + ours) * seconds
        own[0] += ours * seconds

    governor = threads.ThreadGovernor(
        2,
        cpus=2,
        interval=2.0,
        clock=lambda: now[0],
        busy=lambda: busy[0],
        own=lambda: own[0],
        set_threads=applied.append,
    )
    assert applied == [2]  # a run starts with all its threads, whatever an earlier run in the process left
    advance(1.0, others=1.0, ours=1.0)
    assert governor.tick() is None and applied == [2]  # not yet time to look
    advance(1.5, others=1.0, ours=1.0)
    assert governor.tick() == 1 and applied == [2, 1]  # another process took a core
    advance(2.5, others=0.9, ours=1.0)
    assert governor.tick() is None and governor.threads == 1  # still shared: unchanged, nothing applied
    advance(2.5, others=0.0, ours=1.0)
    assert governor.tick() == 2 and applied == [2, 1, 2]  # free again


def test_default_threads_is_torchs_default_not_the_current_count(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # as a governor of an earlier run in this process may have left it
        assert threads.default_threads() == torch.cpu.get_capabilities()["num_physical_cores"]
    finally:
        torch.set_num_threads(before)


def test_governor_does_nothing_without_proc_stat(tmp_path):
    assert threads.machine_busy_seconds(str(tmp_path / "missing")) is None
    now, applied = [0.0], []
    governor = threads.ThreadGovernor(
        2, cpus=2, clock=lambda: now[0], busy=lambda: None, own=lambda: 0.0, set_threads=applied.append
    )
    now[0] = 10.0
    assert governor.tick() is None and applied == [2]


def test_machine_busy_seconds_reads_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 20 900 7 3 2 11 0 0\ncpu0 50 2 10 450 3 1 1 5 0 0\n")
    tick = os.sysconf("SC_CLK_TCK")
    assert threads.machine_busy_seconds(str(stat)) == pytest.approx((100 + 5 + 20 + 3 + 2) / tick)
    assert threads.machine_busy_seconds() > 0  # this machine's own


def test_governor_callback_ticks_after_batches():
    now, applied = [0.0], []
    busy = [0.0]
    governor = threads.ThreadGovernor(
        2, cpus=2, clock=lambda: now[0], busy=lambda: busy[0], own=lambda: 0.0, set_threads=applied.append
    )
    callback = governor.callback()
    now[0], busy[0] = 3.0, 6.0  # others kept both CPUs busy for 3 s
    callback.on_train_batch_end(None, None, None, None, 0)
    assert applied == [2, 1]
    now[0], busy[0] = 6.0, 6.0  # and then none
    callback.on_validation_batch_end(None, None, None, None, 0)
    assert applied == [2, 1, 2]
