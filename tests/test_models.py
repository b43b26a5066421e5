"""Every registered network: forward, backward, input checks, classifier metadata, minimum sizes."""

import pytest
import torch
import torchvision
from torch import nn

import moderncnn as mc
from moderncnn import registry

ALL = mc.list_models()
# Parameters a network keeps fixed by design: airbench94's whitening filters (set from data) and BatchNorm scales.
FROZEN = {
    "airbench94": sorted(["whiten.weight"] + [f"layers.{g}.norm{i}.weight" for g in (1, 2, 3) for i in (1, 2)]),
}


def small_size(info: registry.ModelInfo) -> int:
    """The cheapest input a network accepts that still exercises every layer (big nets at 224 px are slow)."""
    return info.min_input_size if info.fixed_input_size else max(info.min_input_size, 32)


def build(name: str, **kwargs) -> nn.Module:
    info = mc.get_model_info(name)
    if info.fixed_input_size:
        kwargs.setdefault("input_size", small_size(info))
    return mc.create_model(name, **kwargs)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_at_default_input(name, channels):
    info = mc.get_model_info(name)
    net = mc.create_model(name, num_classes=7, in_channels=channels).eval()
    with torch.no_grad():
        for batch in (1, 2):  # one image, and more than one (a batch dimension that is not squeezed away)
            out = net(torch.randn(batch, channels, info.input_size, info.input_size))
            assert out.shape == (batch, 7)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_one_sgd_step_updates_every_parameter(name):
    info = mc.get_model_info(name)
    net = build(name, num_classes=5).train()
    size = small_size(info)
    x = torch.randn(4, info.in_channels, size, size)
    y = torch.tensor([0, 1, 2, 3])
    # Frozen by design (airbench94's whitening filters and BatchNorm scales) is frozen, and nothing else.
    trainable = {k: p for k, p in net.named_parameters() if p.requires_grad}
    frozen = sorted(set(dict(net.named_parameters())) - set(trainable))
    assert frozen == FROZEN.get(name, []), frozen
    before = {k: p.detach().clone() for k, p in trainable.items()}
    optimizer = torch.optim.SGD(trainable.values(), lr=0.5)
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    no_grad = [k for k, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f"parameters without a gradient: {no_grad[:5]}"
    optimizer.step()
    unchanged = [k for k, p in trainable.items() if torch.equal(p, before[k])]
    assert not unchanged, f"parameters that did not train: {unchanged[:5]}"


@pytest.mark.parametrize("name", ALL)
def test_classifier_metadata_names_the_layer_that_makes_the_logits(name):
    net = build(name, num_classes=13)
    layer = net.get_submodule(mc.get_model_info(name).classifier)
    out = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    assert out == 13


@pytest.mark.parametrize("name", ALL)
def test_wrong_channel_count_is_a_clear_error(name):
    info = mc.get_model_info(name)
    net = build(name).eval()
    size = small_size(info)
    wrong = 4 - info.in_channels  # 3 for grey networks, 1 for RGB ones
    with pytest.raises(ValueError, match=f"built for {info.in_channels}-channel input, got {wrong} channels"):
        net(torch.zeros(1, wrong, size, size))


def test_a_batch_without_its_batch_dimension_is_a_clear_error():
    with pytest.raises(ValueError, match=r"shaped \(N, C, H, W\), got a tensor of shape \(3, 32, 32\)"):
        mc.create_model("resnet20")(torch.zeros(3, 32, 32))


@pytest.mark.parametrize("name", [n for n in ALL if mc.get_model_info(n).min_input_size > 1])
def test_minimum_input_size_is_exact(name):
    """The registry's minimum works, one pixel less fails inside torch, and our check says so first."""
    info = mc.get_model_info(name)
    low = info.min_input_size
    net = build(name, input_size=low) if info.fixed_input_size else build(name)
    with torch.no_grad():
        assert net.eval()(torch.zeros(2, info.in_channels, low, low)).shape == (2, 10)

    unchecked_builder = registry._lookup(name)[1]
    kwargs = {"input_size": low - 1} if info.fixed_input_size else {}
    # Fixed-size networks refuse to be built for too small an input; the others fail in forward.
    with pytest.raises((RuntimeError, ValueError)), torch.no_grad():
        unchecked_builder(num_classes=10, in_channels=info.in_channels, **kwargs).eval()(
            torch.zeros(2, info.in_channels, low - 1, low - 1)
        )
    if not info.fixed_input_size:
        with pytest.raises(ValueError, match=f"needs inputs of at least {low}x{low}, got {low - 1}x{low - 1}"):
            net(torch.zeros(2, info.in_channels, low - 1, low - 1))


@pytest.mark.parametrize("name", [n for n in ALL if mc.get_model_info(n).fixed_input_size])
def test_fixed_size_networks_name_the_size_they_need(name):
    info = mc.get_model_info(name)
    net = mc.create_model(name).eval()
    other = info.input_size + 32
    with pytest.raises(ValueError, match=f"expects {info.input_size}x{info.input_size} inputs.*input_size={other}"):
        net(torch.zeros(1, info.in_channels, other, other))


@pytest.mark.parametrize("name", mc.list_models(variant="torchvision"))
def test_minimum_input_size_agrees_with_torchvision(name):
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta  # metadata only, nothing is downloaded
    assert meta["min_size"] == (mc.get_model_info(name).min_input_size,) * 2


def test_googlenet_auxiliary_heads_only_in_training():
    net = mc.create_model("googlenet", aux_logits=True)
    x = torch.randn(2, 3, 64, 64)
    out = net.train()(x)
    assert out.logits.shape == out.aux_logits1.shape == out.aux_logits2.shape == (2, 10)
    assert net.eval()(x).shape == (2, 10)
    assert "aux1.fc2.weight" not in mc.create_model("googlenet").state_dict()


@pytest.mark.parametrize("shortcut", ["zeropad", "projection", "conv"])
@pytest.mark.parametrize("preact", [False, True])
def test_cifar_resnet_shortcut_options(shortcut, preact):
    net = mc.create_model("resnet20", shortcut=shortcut, preact=preact).eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert net.layer1[0].__class__.__name__ == ("PreActBlock" if preact else "BasicBlock")
    kinds = {"zeropad": "ZeroPadShortcut", "projection": "Sequential", "conv": "Conv2d"}
    assert type(net.layer2[0].downsample).__name__ == kinds[shortcut]


def test_cifar_resnet_rejects_an_unknown_shortcut():
    with pytest.raises(ValueError, match="shortcut must be one of zeropad, projection, conv"):
        mc.create_model("resnet20", shortcut="identity")


def test_zero_pad_shortcut_keeps_the_input_and_adds_zero_channels():
    from moderncnn.models.resnet_cifar import ZeroPadShortcut

    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 4, 4)
    torch.testing.assert_close(out[:, :16], x[:, :, ::2, ::2])
    assert not out[:, 16:].any()


def test_vgg_d2l_width_ratio_must_divide_the_channels():
    with pytest.raises(ValueError, match="width_ratio must be a positive divisor"):
        mc.create_model("vgg_d2l", width_ratio=3)


def _feature_map_and_later_convolutions(name: str, size: int) -> tuple[torch.Size, list[str]]:
    """The feature layer's output for one ``size`` px image, and the convolutions that run after it."""
    info = mc.get_model_info(name)
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        net = build(name, input_size=size) if info.fixed_input_size else mc.create_model(name)
    finished: list[tuple[str, nn.Module, torch.Tensor]] = []
    for module_name, module in net.named_modules():
        module.register_forward_hook(lambda m, args, out, n=module_name: finished.append((n, m, out)))
    with torch.no_grad():
        net.eval()(torch.zeros(1, info.in_channels, size, size, device="meta"))
    order = [n for n, _, _ in finished]
    at = order.index(info.feature_layer)
    later = [n for n, m, _ in finished[at + 1 :] if isinstance(m, nn.Conv2d)]
    return finished[at][2].shape, later


@pytest.mark.parametrize("name", ALL)
def test_feature_layer_is_the_last_spatial_feature_map(name):
    """At the default input, the feature layer gives a 4-D map larger than 1x1 after which no convolution runs
    (global pooling or flattening comes next); at the network's minimum input that map is 1x1 or larger."""
    info = mc.get_model_info(name)
    shape, later_convolutions = _feature_map_and_later_convolutions(name, info.input_size)
    assert len(shape) == 4 and min(shape[2:]) > 1, shape
    assert not later_convolutions
    shape, _ = _feature_map_and_later_convolutions(name, info.min_input_size)
    assert len(shape) == 4 and min(shape[2:]) >= 1


def test_plain_cifar_network_has_option_as_parameters_and_no_residual_additions():
    plain = mc.create_model("resnet20", shortcut="none").eval()
    residual = mc.create_model("resnet20", shortcut="zeropad").eval()
    # Option A adds no parameters, so the plain network has exactly the same tensors and takes the same weights.
    assert mc.count_parameters(plain) == mc.count_parameters(residual)
    plain.load_state_dict(residual.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(plain(x), residual(x), atol=1e-3)
        for block in (plain.layer1[1], plain.layer2[0]):  # a block that keeps its shape and one that halves it
            assert block.downsample is None
            h = torch.randn(2, block.conv1.in_channels, 16, 16)
            expected = block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(h))))))
            torch.testing.assert_close(block(h), expected, rtol=0, atol=0)
    assert all(b.downsample is None for stage in (plain.layer1, plain.layer2, plain.layer3) for b in stage)


def test_plain_networks_are_post_activation_only():
    with pytest.raises(ValueError, match="plain networks, not pre-activation ones"):
        mc.create_model("resnet20", shortcut="none", preact=True)
