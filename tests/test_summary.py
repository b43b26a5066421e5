"""summary(), count_parameters(), count_flops() and the model table."""

import pytest
import torch
from torch import nn

import moderncnn as mc
from moderncnn.summarize import model_table


def tiny() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 2, kernel_size=3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 4))


def test_rows_totals_and_flops_of_a_network_small_enough_to_count_by_hand():
    result = mc.summary(tiny(), (1, 1, 5, 5))
    assert [(r.name, r.type, r.output_shape, r.params) for r in result.layers] == [
        ("0", "Conv2d", [1, 2, 3, 3], 20),
        ("1", "ReLU", [1, 2, 3, 3], 0),
        ("2", "Flatten", [1, 18], 0),
        ("3", "Linear", [1, 4], 76),
    ]
    assert result.total_params == result.trainable_params == 96
    # conv: 18 outputs x 9 multiply-adds; linear: 4 outputs x 18 multiply-adds; two FLOPs per multiply-add.
    assert result.flops == 2 * (18 * 9 + 4 * 18) == mc.count_flops(tiny(), (1, 1, 5, 5))


def test_flops_scale_with_the_batch():
    assert mc.count_flops(tiny(), (3, 1, 5, 5)) == 3 * mc.count_flops(tiny(), (1, 1, 5, 5))


def test_text_is_the_books_form_followed_by_totals():
    lines = str(mc.summary(tiny(), (1, 1, 5, 5))).splitlines()
    assert lines[0] == "Conv2d output shape:\t torch.Size([1, 2, 3, 3])"
    assert lines[3] == "Linear output shape:\t torch.Size([1, 4])"
    assert lines[4:] == ["Total params: 96", "Trainable params: 96", "FLOPs (one forward pass at 1x1x5x5): 468"]


def test_frozen_parameters_are_not_trainable():
    net = tiny()
    net[0].requires_grad_(False)
    assert mc.count_parameters(net) == (96, 76)


def test_depth_looks_inside_the_top_level_children():
    net = mc.create_model("resnet20")
    top = mc.summary(net, (1, 3, 32, 32))
    deep = mc.summary(net, (1, 3, 32, 32), depth=2)
    assert [r.name for r in top.layers] == ["conv1", "bn1", "relu", "layer1", "layer2", "layer3", "avgpool", "fc"]
    assert [r.name for r in deep.layers if r.name.startswith("layer2")] == ["layer2.0", "layer2.1", "layer2.2"]
    assert deep.layers[-1].output_shape == [1, 10]
    with pytest.raises(ValueError, match="depth must be at least 1"):
        mc.summary(net, (1, 3, 32, 32), depth=0)


def test_summary_leaves_the_model_as_it_found_it():
    net = mc.create_model("googlenet", aux_logits=True).train()
    hooks_before = len(net._forward_hooks)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    mc.summary(net, (1, 3, 64, 64))
    assert net.training
    assert len(net._forward_hooks) == hooks_before
    # Evaluated in eval mode: BatchNorm running statistics are untouched.
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_to_dict_round_trips_the_rows():
    d = mc.summary(tiny(), (1, 1, 5, 5)).to_dict()
    assert set(d) == {"input_shape", "layers", "total_params", "trainable_params", "flops"}
    assert d["layers"][0] == {"name": "0", "type": "Conv2d", "output_shape": [1, 2, 3, 3], "params": 20}


def test_model_table_lists_every_network_with_real_counts():
    rows = model_table()
    assert sorted(r["name"] for r in rows) == sorted(mc.list_models())
    # Family by family, in the chapter's order.
    assert [r["family"] for r in rows] == sorted((r["family"] for r in rows), key=mc.list_families().index)
    by_name = {r["name"]: r for r in rows}
    assert by_name["resnet_uva"]["params"] == 272_378
    assert by_name["alexnet_d2l"]["input_shape"] == [1, 1, 224, 224]
    # Counted on the meta device, but the same FLOPs as a real forward pass.
    real = mc.count_flops(mc.create_model("resnet20"), (1, 3, 32, 32))
    assert by_name["resnet20"]["flops"] == real > 0
