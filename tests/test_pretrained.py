"""Pretrained weights: torchvision state dicts (random ones, saved to files: no download) into our networks,
adapted to another class count and to 1-channel input, and fine-tuning with a frozen backbone."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

import moderncnn as mc
from moderncnn.engine import load_checkpoint, make_config, train
from moderncnn.models.pretrained import load_pretrained

CLI = [str(Path(sys.executable).with_name("moderncnn"))]
RGB = "synthetic:image_size=32,channels=3,num_train=400,num_test=100"


def saved_torchvision(tmp_path: Path, name: str, **kwargs) -> tuple[Path, dict]:
    """A randomly initialised torchvision network's state dict, saved as a .pth file."""
    if name == "googlenet":
        kwargs = {"aux_logits": True, "init_weights": True, **kwargs}  # the published weights carry the aux heads
    state = getattr(torchvision.models, name)(weights=None, **kwargs).state_dict()
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("name", ["alexnet", "googlenet", "resnet18", "densenet121"])
def test_torchvision_weights_give_torchvision_outputs(tmp_path, name):
    path, state = saved_torchvision(tmp_path, name)
    ours = mc.create_model(name, num_classes=1000, in_channels=3)
    report = load_pretrained(ours, name, str(path))
    assert report.loaded == len(ours.state_dict()) and not report.new_classifier and not report.summed_first_conv
    reference = getattr(torchvision.models, name)(
        weights=None, **({"aux_logits": False} if name == "googlenet" else {})
    )
    reference.load_state_dict({k: v for k, v in state.items() if not k.startswith("aux")})
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours.eval()(x), reference.eval()(x))


def test_another_class_count_and_grey_input_are_adapted(tmp_path):
    path, state = saved_torchvision(tmp_path, "resnet18")
    ours = mc.create_model("resnet18", num_classes=10, in_channels=1)
    fresh_fc = ours.fc.weight.detach().clone()
    report = load_pretrained(ours, "resnet18", str(path))
    assert report.new_classifier and report.summed_first_conv
    torch.testing.assert_close(ours.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(ours.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    torch.testing.assert_close(ours.bn1.running_var, state["bn1.running_var"])
    assert torch.equal(ours.fc.weight, fresh_fc) and ours.fc.weight.shape == (10, 512)
    # A grey image seen as R = G = B: the summed filter responds as the RGB filter does.
    grey = torch.rand(1, 1, 8, 8)
    rgb_conv = torch.nn.functional.conv2d(grey.expand(1, 3, 8, 8), state["conv1.weight"], stride=2, padding=3)
    torch.testing.assert_close(ours.conv1(grey), rgb_conv)


def test_weights_of_another_network_are_refused(tmp_path):
    path, _ = saved_torchvision(tmp_path, "resnet34")
    with pytest.raises(ValueError, match=r"do not fit resnet18: \d+ tensors \(layer1.2.conv1.weight unexpected"):
        load_pretrained(mc.create_model("resnet18"), "resnet18", str(path))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="refusing .*junk.pth: not a plain state dict"):
        load_pretrained(mc.create_model("resnet18"), "resnet18", str(junk))


def test_fine_tuning_with_a_frozen_backbone_trains_only_the_classifier(tmp_path):
    path, state = saved_torchvision(tmp_path, "resnet18")
    config = make_config(
        "resnet18", dataset=RGB, epochs=1, batch_size=50, val_size=50, lr=0.05, augment="none",
        pretrained=str(path), freeze_backbone=True, run_dir=str(tmp_path / "run"),
    )  # fmt: skip
    train(config, quiet=True)
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    weights = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    for key in ("conv1.weight", "layer3.0.conv1.weight", "layer4.1.bn2.weight", "layer4.1.bn2.running_mean"):
        assert torch.equal(weights[key], state[key]), key  # frozen, BatchNorm statistics included
    assert weights["fc.weight"].shape == (10, 512)
    # ImageNet weights come with ImageNet's normalisation.
    assert checkpoint["hyper_parameters"]["mean"] == [0.485, 0.456, 0.406]


def test_fine_tuning_moves_the_backbone_when_not_frozen(tmp_path):
    path, state = saved_torchvision(tmp_path, "resnet18")
    config = make_config(
        "resnet18", dataset=RGB, epochs=1, batch_size=50, val_size=50, lr=0.05, augment="none", limit_batches=2,
        pretrained=str(path), run_dir=str(tmp_path / "run"),
    )  # fmt: skip
    train(config, quiet=True)
    weights = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["state_dict"]
    assert not torch.equal(weights["net.layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])


def test_resuming_a_pretrained_run_does_not_need_the_weights_file(tmp_path):
    path, _ = saved_torchvision(tmp_path, "resnet18")
    config = make_config(
        "resnet18", dataset=RGB, epochs=1, batch_size=50, val_size=50, augment="none", limit_batches=2,
        pretrained=str(path), run_dir=str(tmp_path / "run"), schedule="none",
    )  # fmt: skip
    train(config, quiet=True)
    path.unlink()
    run = tmp_path / "run"
    result = train(None, resume=run, epochs=2, quiet=True)  # continued to 2 epochs
    assert [row.split(",")[0] for row in (run / "metrics.csv").read_text().splitlines()[1:]] == ["0", "1"]
    assert json.loads((run / "results.json").read_text())["test_acc"] == pytest.approx(result.test_acc, abs=1e-6)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lenet", "--pretrained"], "torchvision has no ImageNet weights for lenet"),
        (["resnet18", "--freeze-backbone"], "freeze_backbone needs pretrained weights"),
        (["resnet18", "--pretrained", "/nonexistent.pth", "--dataset", RGB], "no weights file at /nonexistent.pth"),
        (["resnet18", "--pretrained", "--dataset", RGB], "cannot get torchvision's ImageNet weights for resnet18"),
    ],
)
def test_pretrained_errors_are_one_line(tmp_path, argv, message):
    # An empty torch cache: without network the ImageNet weights cannot be fetched (on a machine with network
    # the last case would download them, so it is only checked where the download fails).
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}
    result = subprocess.run(
        [*CLI, "train", *argv, "--epochs", "1", "--val-size", "50", "--run-dir", str(tmp_path / "run"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    if result.returncode == 0 and "ImageNet" in message:
        pytest.skip("this machine can download torchvision's weights")
    assert result.returncode == 2 and message in result.stderr, result.stderr[-1500:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def colour_folder(root: Path, per_class: int = 24, size: int = 40) -> None:
    """Photos of two classes a network can tell apart: reddish and bluish noise, PNG and JPEG."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, channel in (("red", 0), ("blue", 2)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 120, (size, size, 3))
            pixels[..., channel] += 120
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")


def test_fine_tune_on_an_image_folder_end_to_end(tmp_path):
    """train --pretrained PATH on imagefolder:PATH → evaluate → predict → export, as the README shows (at 64 px, not
    the network's 224, to keep the suite short: the pipeline is checked, not ImageNet's resolution)."""
    photos, run = tmp_path / "photos", tmp_path / "run"
    colour_folder(photos)
    path, _ = saved_torchvision(tmp_path, "resnet18")
    steps = [
        ["train", "resnet18", "--dataset", f"imagefolder:{photos}", "--pretrained", str(path), "--epochs", "6",
         "--resize", "64", "--batch-size", "8", "--lr", "0.05", "--num-workers", "0", "--data-dir", str(tmp_path),
         "--run-dir", str(run), "--quiet", "--deterministic"],  # fp32: bf16 reached 0.75 on this tiny folder
        ["evaluate", str(run), "--json"],
        ["predict", str(run), str(photos / "red"), str(photos / "blue"), "--json", "--top-k", "2"],
        ["export", str(run), "--format", "onnx", "--out", str(tmp_path / "photos.onnx")],
    ]  # fmt: skip
    outputs = []
    for argv in steps:
        result = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (argv[0], result.stderr[-2000:])
        outputs.append(result.stdout)
    evaluation = json.loads(outputs[1])
    assert evaluation["classes"] == ["blue", "red"] and evaluation["accuracy"] >= 0.8
    predictions = json.loads(outputs[2])["predictions"]
    assert len(predictions) == 48
    right = [p["label"] == Path(p["path"]).parent.name for p in predictions]
    assert sum(right) / len(right) >= 0.8
    assert (tmp_path / "photos.onnx").is_file()
