"""The registry: names, metadata, and the errors a user gets for bad names and bad arguments."""

import importlib
import inspect
import pkgutil
import typing
from pathlib import Path

import pytest
import torch

import moderncnn as mc
import moderncnn.models
from moderncnn import registry
from moderncnn.errors import ModelError
from moderncnn.models import _registry
from moderncnn.registry import ModelInfo

# The public surface promised by the model-zoo issue; a rename or a lost network fails here.
EXPECTED = {
    "lenet": {"lenet", "lenet_bn"},
    "alexnet": {"alexnet_d2l", "alexnet"},
    "vgg": {"vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "vgg_d2l"},
    "nin": {"nin"},
    "googlenet": {"googlenet_d2l", "googlenet", "googlenet_uva"},
    "inception": {"inception_bn", "inception_v3"},
    "resnet": {
        *(f"resnet{d}" for d in (18, 34, 50, 101, 152)),
        "resnet18_d2l",
        *(f"resnet{d}" for d in (20, 32, 44, 56, 110)),
        "resnet_uva",
        "preact_resnet_uva",
    },
    "densenet": {"densenet121", "densenet161", "densenet169", "densenet201", "densenet_d2l", "densenet_uva"},
    "airbench": {"airbench94"},
}


def test_every_promised_network_is_registered_in_its_family():
    for family, names in EXPECTED.items():
        assert set(mc.list_models(family)) == names
    assert set(mc.list_models()) == set().union(*EXPECTED.values())
    assert mc.list_families() == list(EXPECTED)


def test_list_models_by_variant():
    assert set(mc.list_models(variant="cifar")) == {
        "googlenet_uva",
        "resnet20",
        "resnet32",
        "resnet44",
        "resnet56",
        "resnet110",
        "resnet_uva",
        "preact_resnet_uva",
        "densenet_uva",
        "airbench94",
    }


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown family 'resnets'.*resnet"):
        mc.list_models("resnets")


@pytest.mark.parametrize(
    ("typo", "suggestion"), [("resnt18", "resnet18"), ("vgg16bn", "vgg16_bn"), ("densenet_121", "densenet121")]
)
def test_unknown_name_suggests_the_closest_names(typo, suggestion):
    with pytest.raises(ValueError, match=f"unknown model '{typo}'; did you mean .*{suggestion}"):
        mc.create_model(typo)


def test_unknown_name_without_close_match_points_to_the_listing():
    with pytest.raises(ValueError, match="moderncnn models"):
        mc.get_model_info("transformer")


def test_registering_a_name_twice_is_rejected():
    with pytest.raises(ValueError, match="registered twice"):

        @registry.register_model(
            family="resnet",
            variant="cifar",
            input_size=32,
            min_input_size=1,
            in_channels=3,
            classifier="fc",
            source="x",
        )
        def resnet20(**kwargs):  # pragma: no cover - never built
            raise AssertionError


@pytest.mark.parametrize("name", mc.list_models())
def test_metadata_is_complete_and_consistent(name):
    info = mc.get_model_info(name)
    assert info.name == name
    assert info.variant in registry.VARIANTS
    assert info.in_channels in (1, 3)
    assert 1 <= info.min_input_size <= info.input_size
    assert info.source
    # Textbook networks default to Fashion-MNIST's one channel, the others to RGB.
    assert info.in_channels == (1 if info.variant == "textbook" else 3)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10"])
def test_num_classes_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        mc.create_model("lenet", num_classes=bad)


def test_in_channels_must_be_grey_or_rgb():
    with pytest.raises(ValueError, match=r"in_channels must be 1 \(grey\) or 3 \(RGB\), got 4"):
        mc.create_model("resnet20", in_channels=4)


def test_an_unknown_keyword_names_the_network():
    with pytest.raises(ValueError, match="resnet20: .*unexpected keyword argument 'widht'"):
        mc.create_model("resnet20", widht=2)


def test_model_carries_its_info_and_fixed_size_networks_record_the_built_size():
    net = mc.create_model("lenet", input_size=32)
    assert net.info.name == "lenet" and net.info.input_size == 32
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="expects 32x32 inputs"):
        net(torch.zeros(2, 1, 28, 28))


def test_an_unknown_option_is_a_model_error_that_names_the_valid_ones():
    with pytest.raises(ModelError, match=r"resnet20: unexpected keyword argument 'widht'; did you mean 'widths'\? "
                       r"valid options: final_norm, init_mode, layers, preact, shortcut, widths$"):  # fmt: skip
        mc.create_model("resnet20", widht=2)
    # The architecture a builder fixes is not an option: torchvision's ResNet-18 takes its blocks from its name.
    with pytest.raises(ModelError, match="resnet18: unexpected keyword argument 'layers'; valid options: "):
        mc.create_model("resnet18", layers=[1, 1, 1, 1])


def test_a_type_error_inside_a_builder_is_a_bug_and_keeps_its_traceback(monkeypatch):
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))

    @registry.register_model(family="resnet", variant="cifar", input_size=32, min_input_size=1, in_channels=3,
                             classifier="fc", feature_layer="layer3", source="a test")  # fmt: skip
    def broken_net(**kwargs) -> torch.nn.Module:
        return torch.nn.Linear(2, 2, widht=3)  # a bug in the builder, not in the caller's options

    with pytest.raises(TypeError, match="widht") as caught:
        mc.create_model("broken_net")
    assert not isinstance(caught.value, ValueError)
    assert any(entry.name == "broken_net" for entry in caught.traceback)


@pytest.mark.parametrize("name", mc.list_models())
def test_every_option_the_registry_names_is_accepted(name):
    """Each option at its class's default value builds (on the meta device: shapes only, no memory)."""
    _, builder, options = registry._lookup(name)
    target = inspect.signature(typing.get_type_hints(builder)["return"]).parameters
    assert options and {"num_classes", "in_channels"} <= options
    for option in sorted(options - {"num_classes", "in_channels"}):
        with torch.device("meta"):
            mc.create_model(name, **{option: target[option].default})


def test_every_fact_table_entry_is_a_registered_network_and_back():
    tables = {}
    for module in pkgutil.iter_modules(moderncnn.models.__path__):
        tables.update(getattr(importlib.import_module(f"moderncnn.models.{module.name}"), "default_cfgs", {}))
    assert sorted(tables) == sorted(mc.list_models())
    for name, facts in tables.items():
        assert mc.get_model_info(name) == ModelInfo(name=name, **facts)


def test_every_error_raised_in_the_models_and_the_registry_is_a_model_error():
    with pytest.raises(ModelError):
        mc.create_model("resnet20", shortcut="identity")
    with pytest.raises(ModelError):
        mc.list_models("resnets")
    with pytest.raises(ModelError):
        mc.create_model("lenet")(torch.zeros(1, 3, 28, 28))
    sources = [p.read_text() for p in Path(moderncnn.models.__file__).parent.glob("*.py")]
    assert not any("raise ValueError" in text for text in sources)
