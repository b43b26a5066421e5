"""Parameter counts that the papers and tutorials publish, and parity of counts with torchvision."""

import pytest

import moderncnn as mc
from conftest import torchvision_model


def params(name: str, **kwargs) -> int:
    return mc.count_parameters(mc.create_model(name, **kwargs))[0]


# UvA deep learning tutorial 5, 10 classes on 3x32x32 inputs.
@pytest.mark.parametrize(
    ("name", "count"),
    [("googlenet_uva", 260_650), ("resnet_uva", 272_378), ("preact_resnet_uva", 272_250), ("densenet_uva", 239_146)],
)
def test_uva_tutorial_counts(name, count):
    assert params(name, num_classes=10, in_channels=3) == count


# He et al. 2016, Table 6: CIFAR-10 ResNets with option-A shortcuts.
@pytest.mark.parametrize(("name", "millions"), [("resnet20", 0.27), ("resnet32", 0.46), ("resnet44", 0.66),
                                                ("resnet56", 0.85), ("resnet110", 1.7)])  # fmt: skip
def test_cifar_resnet_counts_match_the_paper(name, millions):
    digits = 1 if millions >= 1 else 2
    assert round(params(name) / 1e6, digits) == millions


def test_projection_shortcuts_add_parameters():
    assert params("resnet20", shortcut="projection") > params("resnet20")


def test_textbook_alexnet_count():
    # 1-channel AlexNet of D2L 8.1 with 10 classes.
    assert params("alexnet_d2l") == 46_764_746


@pytest.mark.parametrize("name", mc.list_models(variant="torchvision"))
def test_same_parameter_count_as_torchvision(name):
    reference = torchvision_model(name)
    assert params(name, num_classes=1000) == sum(p.numel() for p in reference.parameters())
