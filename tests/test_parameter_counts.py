"""Parameter counts that the papers and tutorials publish, and parity of counts with torchvision."""

import pytest
import torch

import moderncnn as mc
from conftest import torchvision_model


def params(name: str, **kwargs) -> int:
    # Counted on the meta device: shapes without storage or initialisation (VGG's 140M weights took 3 s to fill).
    with torch.device("meta"):
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
    with torch.device("meta"):
        reference = torchvision_model(name)
    assert params(name, num_classes=1000) == sum(p.numel() for p in reference.parameters())


def test_googlenet_uva_widths_scale_each_branch_and_default_to_the_tutorial():
    # The sweep's channel options: each factor scales one branch of every Inception block (the tutorial's first block
    # is 16 | 32->32 | 16->8 | 8 on 64 stem channels), each block takes what the one before concatenates.
    import torch

    from moderncnn.registry import create_model

    net = create_model("googlenet_uva", width_3x3=2.0, width_reduce=0.5, width_pool=0.5, stem_channels=32)
    first = net.blocks[0]
    assert first.branch1.conv.in_channels == 32 and first.branch1.conv.out_channels == 16
    assert (first.branch2[0].conv.out_channels, first.branch2[1].conv.out_channels) == (16, 64)
    assert (first.branch3[0].conv.out_channels, first.branch3[1].conv.out_channels) == (8, 8)
    assert first.branch4[1].conv.out_channels == 4 and net.blocks[1].branch1.conv.in_channels == 16 + 64 + 8 + 4
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert sum(p.numel() for p in create_model("googlenet_uva", width_1x1=1.0).parameters()) == 260_650
