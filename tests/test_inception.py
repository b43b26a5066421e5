"""The Inception family: BN-Inception against its paper's table, Inception-v3's auxiliary head and weights."""

import pytest
import torch
import torchvision

import moderncnn as mc
from moderncnn.errors import ModelError
from moderncnn.models.pretrained import load_pretrained

# Ioffe & Szegedy 2015, Figure 5: output channels and side at 224 px of the stem and of each Inception module.
# The figure's output-size column gives 576 channels after 4c and 4d and 1024 after 4e, but its own branch
# columns (#1x1 + #3x3 + double #3x3 + pool projection, or the input passed through) sum to 608, 608 and 1056, as
# in every public BN-Inception; those sums are what the layers produce, so they are pinned here.
PAPER_224 = {
    "conv1": (64, 112),
    "maxpool1": (64, 56),
    "conv3": (192, 56),
    "maxpool2": (192, 28),
    "inception3a": (256, 28),
    "inception3b": (320, 28),
    "inception3c": (576, 14),
    "inception4a": (576, 14),
    "inception4b": (576, 14),
    "inception4c": (608, 14),
    "inception4d": (608, 14),
    "inception4e": (1056, 7),
    "inception5a": (1024, 7),
    "inception5b": (1024, 7),
}


def output_shapes(net: torch.nn.Module, size: int, channels: int) -> dict[str, tuple[int, ...]]:
    shapes = {}

    def record(name: str):
        def hook(module, args, out) -> None:
            shapes[name] = out.shape

        return hook

    for name in PAPER_224:
        net.get_submodule(name).register_forward_hook(record(name))
    with torch.device("meta"), torch.no_grad():
        net.eval()(torch.zeros(1, channels, size, size))
    return {name: tuple(shape[1:]) for name, shape in shapes.items()}


def test_bn_inception_has_the_papers_channels_and_sizes_at_224_px():
    with torch.device("meta"):
        net = mc.create_model("inception_bn", num_classes=1000, in_channels=3)
    assert output_shapes(net, 224, 3) == {name: (c, side, side) for name, (c, side) in PAPER_224.items()}


def test_bn_inception_for_fashion_mnist_ends_at_3x3():
    info = mc.get_model_info("inception_bn")
    assert (info.in_channels, info.input_size, info.variant) == (1, 96, "textbook")
    with torch.device("meta"):
        shapes = output_shapes(mc.create_model("inception_bn"), 96, 1)
    assert shapes["inception3b"] == (320, 12, 12)
    assert shapes["inception4d"] == (608, 6, 6)
    assert shapes["inception5b"] == (1024, 3, 3)


def test_bn_inception_parameter_count_agrees_with_pytorchcv():
    # pytorchcv's bninception (osmr/imgclsmob, built from the same table) asserts 11,295,240 parameters for
    # 1000 classes; its convolutions carry a bias, ours (followed by BatchNorm) do not.
    net = mc.create_model("inception_bn", num_classes=1000, in_channels=3)
    biases = sum(m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert mc.count_parameters(net)[0] + biases == 11_295_240


def test_bn_inception_strided_modules_have_no_1x1_branch_and_pass_the_pool_through():
    net = mc.create_model("inception_bn")
    for name in ("inception3c", "inception4e"):
        block = net.get_submodule(name)
        assert block.branch1 is None
        assert [type(m).__name__ for m in block.branch4] == ["MaxPool2d"]
        assert block.branch2[1].conv.stride == block.branch3[2].conv.stride == (2, 2)
    assert isinstance(net.inception5b.branch4[0], torch.nn.MaxPool2d)
    assert isinstance(net.inception5a.branch4[0], torch.nn.AvgPool2d)


def test_inception_v3_auxiliary_head_only_in_training_and_only_at_299_px():
    net = mc.create_model("inception_v3", aux_logits=True)
    x = torch.randn(2, 3, 299, 299)
    out = net.train()(x)
    assert out.logits.shape == out.aux_logits.shape == (2, 10)
    with torch.no_grad():
        assert net.eval()(x).shape == (2, 10)
        assert net.eval()(torch.randn(2, 3, 75, 75)).shape == (2, 10)
    with pytest.raises(ModelError, match=r"auxiliary classifier needs 299x299 inputs .*got \(16, 16\)"):
        net.train()(torch.randn(2, 3, 298, 298))
    assert not any(k.startswith("AuxLogits.") for k in mc.create_model("inception_v3").state_dict())


def test_torchvision_inception_v3_weights_with_their_auxiliary_head_load_into_ours_without_it(tmp_path):
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True).eval()
    path = tmp_path / "inception_v3.pth"
    torch.save(reference.state_dict(), path)
    ours = mc.create_model("inception_v3", num_classes=1000)
    report = load_pretrained(ours, "inception_v3", str(path))
    assert report.loaded == len(ours.state_dict()) and not report.new_classifier
    x = torch.randn(1, 3, 80, 80)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference(x), rtol=0, atol=1e-5)
