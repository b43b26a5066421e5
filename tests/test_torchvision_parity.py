"""Our torchvision-variant networks are torchvision's: same state dict, same logits."""

import pytest
import torch
import torchvision

import moderncnn as mc
from conftest import torchvision_model
from moderncnn.models import load_torchvision_weights


def assert_same_network(name: str, size: int = 96, **kwargs) -> None:
    reference = torchvision_model(name, num_classes=1000, **kwargs).eval()
    ours = mc.create_model(name, num_classes=1000, **kwargs).eval()
    theirs = reference.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.items()}
    load_torchvision_weights(ours, theirs)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", mc.list_models(variant="torchvision"))
def test_loads_torchvision_weights_and_gives_the_same_logits(name):
    assert_same_network(name)


def test_parity_at_imagenet_resolution():
    assert_same_network("resnet18", size=224)


def test_googlenet_with_auxiliary_heads_matches_in_training_mode():
    kwargs = {"aux_logits": True, "dropout": 0.0, "dropout_aux": 0.0}
    reference = torchvision.models.googlenet(weights=None, num_classes=1000, init_weights=True, **kwargs).train()
    ours = mc.create_model("googlenet", num_classes=1000, **kwargs).train()
    load_torchvision_weights(ours, reference.state_dict())
    x = torch.randn(2, 3, 96, 96)
    for got, want in zip(ours(x), reference(x), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_inception_v3_with_auxiliary_head_matches_in_training_mode():
    kwargs = {"aux_logits": True, "dropout": 0.0}
    reference = torchvision.models.inception_v3(weights=None, num_classes=1000, init_weights=True, **kwargs).train()
    ours = mc.create_model("inception_v3", num_classes=1000, **kwargs).train()
    load_torchvision_weights(ours, reference.state_dict())
    x = torch.randn(2, 3, 299, 299)  # the auxiliary head needs the full size
    for got, want in zip(ours(x), reference(x), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("name", "size"), [("googlenet", 64), ("inception_v3", 80)])
def test_googlenet_transform_input_matches(name, size):
    reference = torchvision_model(name, transform_input=True)
    ours = mc.create_model(name, num_classes=1000, transform_input=True)
    load_torchvision_weights(ours, reference.state_dict())
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference.eval()(x), rtol=0, atol=1e-5)


def test_weights_for_another_network_are_refused_clearly():
    ours = mc.create_model("resnet18", num_classes=1000)
    with pytest.raises(ValueError, match=r"weights do not fit resnet18: 96 unexpected \(layer1.2.bn1.bias, "):
        load_torchvision_weights(ours, torchvision.models.resnet34(weights=None).state_dict())
    with pytest.raises(ValueError, match=r"2 wrong shape \(fc.weight, fc.bias\)"):
        load_torchvision_weights(mc.create_model("resnet18"), torchvision.models.resnet18(weights=None).state_dict())
    with pytest.raises(ValueError, match=r"1 missing \(bn1.bias\)"):
        weights = torchvision.models.resnet18(weights=None).state_dict()
        del weights["bn1.bias"]
        load_torchvision_weights(ours, weights)


@pytest.mark.parametrize(("name", "size"), [("googlenet", 64), ("inception_v3", 299)])
def test_torchvisions_published_weights_load_into_our_default_networks(name, size):
    # torchvision's published GoogLeNet and Inception-v3 weights always carry the auxiliary heads; its builders load
    # them, drop the heads (aux_logits=False) and switch on transform_input. The same tensors, randomly initialised:
    torch.manual_seed(0)
    build = getattr(torchvision.models, name)
    published = build(weights=None, aux_logits=True, init_weights=False).state_dict()
    assert any(k.split(".")[0] in ("aux1", "AuxLogits") for k in published)
    reference = build(weights=None, aux_logits=False, transform_input=True, init_weights=False)
    reference.load_state_dict(published, strict=False)  # what the builder does, less the heads it drops
    ours = mc.create_model(name, num_classes=1000)  # the default network: no auxiliary heads
    assert not ours.transform_input
    load_torchvision_weights(ours, published)
    assert ours.transform_input and not ours.aux_logits
    x = torch.randn(1, 3, size, size)  # Inception-v3 at its own size, one image
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference.eval()(x), rtol=0, atol=1e-5)
    # Asked to keep the input as it is, the heads are still dropped and the flag is left off.
    kept = load_torchvision_weights(mc.create_model(name, num_classes=1000), published, transform_input=False)
    assert not kept.transform_input
