"""The textbook's printouts (Dive into Deep Learning, chapters 7-8), layer by layer, exactly."""

import pytest
from torch import nn

import moderncnn as mc


def rows(name: str, shape: tuple[int, ...], **kwargs) -> list[tuple[str, tuple[int, ...]]]:
    net = mc.create_model(name, num_classes=10, in_channels=shape[1], **kwargs)
    return [(row.type, tuple(row.output_shape)) for row in mc.summary(net, shape).layers]


BOOK = {
    # D2L 8.1, AlexNet at 1x1x224x224.
    "alexnet_d2l": [
        ("Conv2d", (1, 96, 54, 54)),
        ("ReLU", (1, 96, 54, 54)),
        ("MaxPool2d", (1, 96, 26, 26)),
        ("Conv2d", (1, 256, 26, 26)),
        ("ReLU", (1, 256, 26, 26)),
        ("MaxPool2d", (1, 256, 12, 12)),
        ("Conv2d", (1, 384, 12, 12)),
        ("ReLU", (1, 384, 12, 12)),
        ("Conv2d", (1, 384, 12, 12)),
        ("ReLU", (1, 384, 12, 12)),
        ("Conv2d", (1, 256, 12, 12)),
        ("ReLU", (1, 256, 12, 12)),
        ("MaxPool2d", (1, 256, 5, 5)),
        ("Flatten", (1, 6400)),
        ("Linear", (1, 4096)),
        ("ReLU", (1, 4096)),
        ("Dropout", (1, 4096)),
        ("Linear", (1, 4096)),
        ("ReLU", (1, 4096)),
        ("Dropout", (1, 4096)),
        ("Linear", (1, 10)),
    ],
    # D2L 8.2, VGG-11 at 1x1x224x224.
    "vgg_d2l": [
        ("Sequential", (1, 64, 112, 112)),
        ("Sequential", (1, 128, 56, 56)),
        ("Sequential", (1, 256, 28, 28)),
        ("Sequential", (1, 512, 14, 14)),
        ("Sequential", (1, 512, 7, 7)),
        ("Flatten", (1, 25088)),
        ("Linear", (1, 4096)),
        ("ReLU", (1, 4096)),
        ("Dropout", (1, 4096)),
        ("Linear", (1, 4096)),
        ("ReLU", (1, 4096)),
        ("Dropout", (1, 4096)),
        ("Linear", (1, 10)),
    ],
    # D2L 8.3, NiN at 1x1x224x224.
    "nin": [
        ("Sequential", (1, 96, 54, 54)),
        ("MaxPool2d", (1, 96, 26, 26)),
        ("Sequential", (1, 256, 26, 26)),
        ("MaxPool2d", (1, 256, 12, 12)),
        ("Sequential", (1, 384, 12, 12)),
        ("MaxPool2d", (1, 384, 5, 5)),
        ("Dropout", (1, 384, 5, 5)),
        ("Sequential", (1, 10, 5, 5)),
        ("AdaptiveAvgPool2d", (1, 10, 1, 1)),
        ("Flatten", (1, 10)),
    ],
    # D2L 8.4, GoogLeNet at 1x1x96x96.
    "googlenet_d2l": [
        ("Sequential", (1, 64, 24, 24)),
        ("Sequential", (1, 192, 12, 12)),
        ("Sequential", (1, 480, 6, 6)),
        ("Sequential", (1, 832, 3, 3)),
        ("Sequential", (1, 1024)),
        ("Linear", (1, 10)),
    ],
    # D2L 7.6, LeNet at 1x1x28x28.
    "lenet": [
        ("Conv2d", (1, 6, 28, 28)),
        ("Sigmoid", (1, 6, 28, 28)),
        ("AvgPool2d", (1, 6, 14, 14)),
        ("Conv2d", (1, 16, 10, 10)),
        ("Sigmoid", (1, 16, 10, 10)),
        ("AvgPool2d", (1, 16, 5, 5)),
        ("Flatten", (1, 400)),
        ("Linear", (1, 120)),
        ("Sigmoid", (1, 120)),
        ("Linear", (1, 84)),
        ("Sigmoid", (1, 84)),
        ("Linear", (1, 10)),
    ],
    # D2L 8.6, ResNet-18 at 1x1x96x96.
    "resnet18_d2l": [
        ("Sequential", (1, 64, 24, 24)),
        ("Sequential", (1, 64, 24, 24)),
        ("Sequential", (1, 128, 12, 12)),
        ("Sequential", (1, 256, 6, 6)),
        ("Sequential", (1, 512, 3, 3)),
        ("Sequential", (1, 10)),
    ],
}

INPUTS = {"googlenet_d2l": 96, "resnet18_d2l": 96, "lenet": 28}


@pytest.mark.parametrize("name", list(BOOK))
def test_layer_shapes_match_the_book(name):
    size = INPUTS.get(name, 224)
    assert rows(name, (1, 1, size, size)) == BOOK[name]


def test_small_vgg_divides_the_channels_by_the_ratio():
    # D2L 8.2 trains VGG-11 with a quarter of the channels on Fashion-MNIST; the head keeps 4096 units.
    got = rows("vgg_d2l", (1, 1, 224, 224), width_ratio=4)
    assert [shape for _, shape in got[:6]] == [
        (1, 16, 112, 112),
        (1, 32, 56, 56),
        (1, 64, 28, 28),
        (1, 128, 14, 14),
        (1, 128, 7, 7),
        (1, 6272),
    ]
    assert got[6] == ("Linear", (1, 4096))


def test_vgg_d2l_takes_any_conv_arch():
    got = rows("vgg_d2l", (1, 1, 224, 224), conv_arch=((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)))
    net = mc.create_model("vgg_d2l", conv_arch=((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)))
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 13  # VGG-16
    assert got[4] == ("Sequential", (1, 512, 7, 7))


def test_bn_lenet_follows_the_book():
    # D2L 8.5: BatchNorm after each conv and hidden dense layer; the first conv has no padding.
    got = rows("lenet_bn", (1, 1, 28, 28))
    assert [t for t, _ in got] == [
        "Conv2d", "BatchNorm2d", "Sigmoid", "AvgPool2d",
        "Conv2d", "BatchNorm2d", "Sigmoid", "AvgPool2d", "Flatten",
        "Linear", "BatchNorm1d", "Sigmoid", "Linear", "BatchNorm1d", "Sigmoid", "Linear",
    ]  # fmt: skip
    assert got[0][1] == (1, 6, 24, 24) and got[8][1] == (1, 256)


def test_textbook_densenet_layout():
    # D2L 8.7: 64-channel stem, four dense blocks of four convs with growth rate 32, halving transitions.
    net = mc.create_model("densenet_d2l")
    names = [name for name, _ in net.features.named_children()]
    assert names[4:] == [
        "denseblock1", "transition1", "denseblock2", "transition2",
        "denseblock3", "transition3", "denseblock4", "norm5",
    ]  # fmt: skip
    # 64 + 4*32 = 192 -> 96; 96 + 128 = 224 -> 112; 112 + 128 = 240 -> 120; 120 + 128 = 248 channels at the end.
    assert [net.features.get_submodule(f"transition{i}").conv.out_channels for i in (1, 2, 3)] == [96, 112, 120]
    assert net.classifier.in_features == 248
    assert all(layer.conv2 is None for layer in net.features.denseblock1.values())  # no bottleneck
