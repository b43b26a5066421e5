"""``moderncnn benchmark``: the library's rows and the command's output, on LeNet (fast)."""

import argparse
import csv
import io
import json
import time

import pytest
import torch

from moderncnn import benchmark as bench
from moderncnn.cli.benchmark import add_parsers as add_parser
from moderncnn.cli.benchmark import cases
from moderncnn.errors import UsageError
from moderncnn.run import speed
from moderncnn.summarize import count_flops, count_training_flops

QUICK = {"batch_size": 4, "repeats": 2, "min_pass_s": 0.01, "device": "cpu"}
PEAKS = {"32": 100.0, "bf16-mixed": 400.0}
MEASURE_PEAK = bench.cpu_peak


@pytest.fixture(autouse=True)
def known_peaks(monkeypatch):
    """The CPU's peak as fixed figures: measuring it takes seconds and writes to the user's cache."""
    monkeypatch.setattr(bench, "cpu_peak", lambda precision, **kwargs: PEAKS[precision])


@pytest.fixture
def bf16_cpu(monkeypatch):
    monkeypatch.setattr(speed, "detect_hardware", lambda accelerator="auto": speed.Hardware("cpu", bf16="amx"))


def test_auto_gives_fp32_beside_the_choice_for_this_hardware(bf16_cpu):
    rows = bench.benchmark(["lenet"], **QUICK)
    assert [(r["precision"], r["channels_last"], r["mode"]) for r in rows] == [
        ("32", False, "train"),
        ("32", False, "infer"),
        ("bf16-mixed", True, "train"),
        ("bf16-mixed", True, "infer"),
    ]
    net = __import__("moderncnn").create_model("lenet")
    flops = {"infer": count_flops(net, (1, 1, 28, 28)), "train": count_training_flops(net, (1, 1, 28, 28))}
    # Backward costs about twice the forward; the first layer computes no gradient for its input, so a bit less.
    assert 2.5 * flops["infer"] < flops["train"] < 3 * flops["infer"]
    for r in rows:
        assert r["input"] == "1x28x28" and r["batch_size"] == 4 and r["device"] == "cpu"
        assert r["images_per_sec"] > 0 and r["peak_memory_mib"] >= 0
        assert r["gflop_per_image"] == pytest.approx(flops[r["mode"]] / 1e9, abs=1e-4)
        assert r["gflops"] == pytest.approx(flops[r["mode"]] * r["images_per_sec"] / 1e9, rel=0.01, abs=0.01)
        assert r["peak_fraction"] == pytest.approx(r["gflops"] / PEAKS[r["precision"]], rel=0.01, abs=1e-4)
        assert r["images_per_sec"] == pytest.approx(4 / (r["ms_per_step"] / 1000), rel=0.01)


def test_the_cpu_peak_is_measured_once_per_machine_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(bench, "PEAK_MATMUL_SIZE", 64)
    monkeypatch.setattr(bench, "PEAK_CONV", (2, 16, 8))
    monkeypatch.setattr(bench, "cpu_peak", MEASURE_PEAK)
    measured = bench.cpu_peak("32", seconds=0.01)
    assert measured > 0
    cache = json.loads((tmp_path / "moderncnn" / "cpu-peak.json").read_text())
    (key,) = cache
    assert key.endswith("|32|matmul+conv") and f"{torch.get_num_threads()} threads" in key
    cache[key] = 12345.0  # what is cached is what a second call reports, without measuring
    (tmp_path / "moderncnn" / "cpu-peak.json").write_text(json.dumps(cache))
    assert bench.cpu_peak("32") == 12345.0
    assert bench.cpu_peak("32", refresh=True, seconds=0.01) != 12345.0
    with pytest.raises(ValueError, match="measured for 32 and bf16-mixed"):
        bench.cpu_peak("16-mixed")


def test_auto_on_a_cpu_without_bf16_adds_the_channels_last_row(monkeypatch):
    monkeypatch.setattr(speed, "detect_hardware", lambda accelerator="auto": speed.Hardware("cpu"))
    rows = bench.benchmark(["lenet"], modes=("infer",), **QUICK)
    assert [(r["precision"], r["channels_last"]) for r in rows] == [("32", False), ("32", True)]


def test_one_precision_one_input_one_mode():
    rows = bench.benchmark(["lenet_bn"], input=(3, 32, 32), precision="32", modes=("infer",), **QUICK)
    assert [(r["precision"], r["mode"], r["input"]) for r in rows] == [("32", "infer", "3x32x32")]
    net = __import__("moderncnn").create_model("lenet_bn", in_channels=3, input_size=32)
    assert rows[0]["gflop_per_image"] == pytest.approx(count_flops(net, (1, 3, 32, 32)) / 1e9, abs=1e-4)


def test_warm_up_is_excluded_and_the_median_pass_is_reported():
    calls = []

    def step():
        calls.append(None)
        time.sleep(0.3 if len(calls) <= 2 else 0.01)  # two slow warm-up calls (compilation, caches)

    seconds = bench._time_passes(step, lambda: None, repeats=3, min_pass_s=0.0)
    assert len(calls) == 5 and 0.009 < seconds < 0.1


def test_the_gpu_peak_is_known_for_listed_devices():
    assert bench.peak_tflops("NVIDIA H100 80GB HBM3", "bf16-mixed") == 989.0
    assert bench.peak_tflops("Tesla V100-SXM2-16GB", "bf16-mixed") is None
    assert bench.peak_tflops("Some Future GPU", "32") is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"models": []}, "at least one network"),
        ({"models": ["lenet"], "modes": ("fit",)}, "modes must be"),
        ({"models": ["lenet"], "precision": "64"}, "precision must be"),
        ({"models": ["lenet"], "precision": "16-mixed"}, "needs a GPU"),
    ],
)
def test_usage_errors(kwargs, match):
    with pytest.raises(UsageError, match=match):
        bench.benchmark(**{**QUICK, **kwargs})
    with pytest.raises(ValueError, match="lenet"):  # an unknown name, with the closest ones
        bench.benchmark(["lenett"], **QUICK)


def parse(argv):
    parser = argparse.ArgumentParser(prog="moderncnn")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_command_prints_json_and_csv(capsys):
    argv = ["benchmark", "lenet", "--batch-size", "4", "--repeats", "1", "--min-pass-s", "0.01", "--device", "cpu"]
    args = parse([*argv, "--precision", "32", "--train", "--json"])
    assert args.func(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["mode"], r["precision"]) for r in rows] == [("lenet", "train", "32")]
    args = parse([*argv, "--precision", "32", "--infer", "--csv"])
    assert args.func(args) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert row["mode"] == "infer" and float(row["images_per_sec"]) > 0
    args = parse([*argv, "--precision", "32"])
    assert args.func(args) == 0
    assert "lenet" in capsys.readouterr().out


def test_without_models_the_chapter_recipe_is_timed_at_its_settings(capsys):
    found = cases(parse(["benchmark"]))
    assert [c["model"] for c in found] == [
        "alexnet_d2l",
        "vgg_d2l",
        "nin",
        "googlenet_d2l",
        "lenet_bn",
        "resnet18_d2l",
        "densenet_d2l",
    ]
    alexnet, vgg, lenet = found[0], found[1], found[4]
    assert (alexnet["input"], alexnet["batch_size"]) == ((1, 224, 224), 128)
    assert vgg["model_kwargs"] == {"width_ratio": 4} and lenet["input"] == (1, 28, 28)
    assert cases(parse(["benchmark", "--batch-size", "8"]))[0]["batch_size"] == 8
    with pytest.raises(SystemExit):
        parse(["benchmark", "--input", "1x28"])
    assert "--input must be CxHxW" in capsys.readouterr().err
    with pytest.raises(UsageError, match="not both"):
        cases(parse(["benchmark", "lenet", "--recipe", "d2l-ch7"]))
