"""The speed-run network (airbench94) and its training techniques, each usable by any network: Muon for the
convolution filters, the linear decay, the alternating flip, reflected shifts, multi-view TTA, BatchNorm overrides,
the data-dependent initialisation, and ``reproduce airbench`` at smoke size."""

import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import moderncnn as mc
from moderncnn.data.augment import BatchAugment, alternate_flips
from moderncnn.data.base import Split
from moderncnn.data.loader import DeviceLoader
from moderncnn.engine import load_checkpoint, make_config, train
from moderncnn.engine.evaluate import evaluate
from moderncnn.engine.module import tta_logits
from moderncnn.engine.optim import MuonWithSGD, build_optimizer, lr_factor, muon_parameters, parameter_groups
from moderncnn.models.airbench import AirbenchNet
from moderncnn.run.checkpoint import build_network

# --- the network -------------------------------------------------------------------------------------------------


def test_parameter_count_is_the_scripts():
    # airbench94_muon.py: whiten 3*24*2*2 + 24; three conv groups of two 3x3 convolutions (no bias) with two
    # BatchNorms (scale and shift); a bias-free 256 x 10 head.
    convs = 24 * 64 + 64 * 64 + 64 * 256 + 256 * 256 + 256 * 256 + 256 * 256
    norms = 4 * (64 + 256 + 256)
    expected = (3 * 24 * 4 + 24) + 9 * convs + norms + 256 * 10
    net = mc.create_model("airbench94")
    assert sum(p.numel() for p in net.parameters()) == expected == 1_972_792
    frozen = 3 * 24 * 4 + 2 * (64 + 256 + 256)  # the whitening filters and the BatchNorm scales
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == expected - frozen


def test_shapes_head_scale_and_batchnorm_settings():
    net = mc.create_model("airbench94", num_classes=7).eval()
    x = torch.randn(2, 3, 32, 32)
    features = net.pool(net.layers(net.whiten(x))).flatten(1)
    assert features.shape == (2, 256)
    torch.testing.assert_close(net(x), net.head(features) / 256)
    assert net(torch.randn(3, 3, 28, 28)).shape == (3, 7)  # any side from 9 px (global max-pool)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6 and all(m.momentum == 0.4 and m.eps == 1e-12 for m in norms)
    assert all(not m.weight.requires_grad and torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    assert net.head.weight.std().item() == pytest.approx(1.0, rel=1e-5)


def test_convolutions_start_as_the_identity_on_their_first_filters():
    conv = mc.create_model("airbench94").layers[1].conv1  # 24 -> 64 channels
    x = torch.randn(2, 24, 9, 9)
    torch.testing.assert_close(conv(x)[:, :24], x)


def _smooth_images(n: int = 64, size: int = 16) -> torch.Tensor:
    """Correlated pixels (blurred noise), as natural images have: every patch direction has a clear variance."""
    x = torch.randn(n, 3, size + 4, size + 4, generator=torch.Generator().manual_seed(0))
    return F.avg_pool2d(x, 3, stride=1)[..., :size, :size] + 0.3 * x[..., :size, :size]


def test_whitening_is_computed_from_the_images_and_whitens_their_patches():
    images = _smooth_images()
    net = AirbenchNet()
    net.init_from_data(images)
    first = net.whiten.weight.clone()
    net.init_from_data(images)
    assert torch.equal(net.whiten.weight, first)  # deterministic for the same images
    assert torch.equal(first[:12], -first[12:])  # each filter and its negative
    # The first 12 outputs (no bias) of every 2x2 patch are uncorrelated, each with variance lambda / (lambda + eps).
    out = F.conv2d(images, first[:12]).permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = out.T @ out / len(out)
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    eigenvalues = torch.linalg.eigvalsh(patches.T @ patches / len(patches))
    torch.testing.assert_close(covariance, torch.diag(eigenvalues / (eigenvalues + 5e-4)), atol=2e-4, rtol=1e-3)
    other = AirbenchNet()
    other.init_from_data(_smooth_images() * 2)
    assert not torch.allclose(other.whiten.weight, first)  # it depends on the data


def test_a_training_step_leaves_the_frozen_parameters_alone():
    net = mc.create_model("airbench94").train()
    net.init_from_data(_smooth_images(16, 32))
    cfg = make_config("airbench94", optimizer="muon", momentum=0.85, nesterov=True, lr=0.5, dataset="synthetic")
    optimizer = build_optimizer(net, cfg, "head")
    before = {k: p.detach().clone() for k, p in net.named_parameters()}
    F.cross_entropy(net(torch.randn(8, 3, 32, 32)), torch.arange(8) % 10).backward()
    optimizer.step()
    changed = {k for k, p in net.named_parameters() if not torch.equal(p, before[k])}
    assert changed == {k for k, p in net.named_parameters() if p.requires_grad}


# --- Muon for the filters, SGD for the rest ----------------------------------------------------------------------


def test_muon_takes_every_trainable_filter_bank_and_sgd_everything_else():
    net = mc.create_model("resnet20")
    filters = muon_parameters(net)
    convs = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [id(p) for p in filters] == [id(p) for p in convs] and all(p.dim() == 4 for p in filters)
    groups = parameter_groups(net, 5e-4, 0.0, classifier="fc", classifier_lr=3.0, exclude={id(p) for p in filters})
    rest = [p for g in groups for p in g["params"]]
    assert {id(p) for p in rest} | {id(p) for p in filters} == {id(p) for p in net.parameters()}
    assert not {id(p) for p in rest} & {id(p) for p in filters}
    head = [g for g in groups if g.get("lr") == 3.0]
    assert {id(p) for g in head for p in g["params"]} == {id(net.fc.weight), id(net.fc.bias)}
    frozen = mc.create_model("airbench94")
    assert id(frozen.whiten.weight) not in {id(p) for p in muon_parameters(frozen)}  # frozen filters stay out


@pytest.mark.parametrize("fp32", [False, True])
def test_muon_step_is_torchs_muon_on_the_filters_matrix(fp32):
    """One step on a channels-last filter bank: the filters are rescaled to norm sqrt(out), then moved by what
    torch.optim.Muon does to their (out, in*k*k) matrix (in fp32 where bf16 is emulated: the same to bf16 rounding)."""
    conv = nn.Conv2d(8, 16, 3, bias=False).to(memory_format=torch.channels_last)
    bias = nn.Parameter(torch.zeros(16))
    conv.weight.grad = torch.randn_like(conv.weight)
    bias.grad = torch.ones(16)
    normalised = conv.weight.detach() * 4 / conv.weight.detach().norm()
    matrix = nn.Parameter(normalised.reshape(16, -1).clone())
    matrix.grad = conv.weight.grad.reshape(16, -1).clone()
    torch.optim.Muon([matrix], lr=0.2, momentum=0.6, nesterov=True, weight_decay=0.0, ns_steps=3).step()
    optimizer = MuonWithSGD(
        [conv.weight], [{"params": [bias]}], lr=0.1, momentum=0.0, nesterov=False, muon_lr=0.2, muon_momentum=0.6,
        fp32=fp32,
    )  # fmt: skip
    optimizer.step()
    torch.testing.assert_close(conv.weight.reshape(16, -1), matrix.detach(), atol=2e-3, rtol=0)
    assert not torch.equal(conv.weight.reshape(16, -1), normalised.reshape(16, -1))
    torch.testing.assert_close(bias.detach(), torch.full((16,), -0.1))  # SGD on the rest
    optimizer.zero_grad()
    assert conv.weight.grad is None and bias.grad is None


def test_a_muon_run_trains_saves_both_optimisers_and_its_schedule_scales_both(tmp_path):
    data = "synthetic:image_size=28,num_train=1200,num_test=300,num_classes=4"
    cfg = make_config(
        "lenet_bn", dataset=data, epochs=2, batch_size=64, val_size=200, optimizer="muon", momentum=0.9,
        nesterov=True, lr=0.5, muon_lr=0.05, schedule="linear", run_dir=str(tmp_path / "run"),
    )  # fmt: skip
    result = train(cfg, quiet=True)
    assert result.train_acc > 0.4  # 4 classes: chance is 0.25 (plain SGD at lr 0.5 reached 0.28 here, Muon 0.51)
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    (state,) = checkpoint["optimizer_states"]
    assert set(state) == {"sgd", "muon"} and state["muon"]["state"]  # Muon's momentum buffers are saved
    sgd = {g["lr"] / g["initial_lr"] for g in state["sgd"]["param_groups"]}
    muon = {g["lr"] / g["initial_lr"] for g in state["muon"]["param_groups"]}
    assert sgd == muon and max(sgd) < 0.05  # one schedule for both: linear, at its end
    assert [g["initial_lr"] for g in state["muon"]["param_groups"]] == [0.05]


def test_linear_schedule_falls_to_zero_at_the_last_step():
    factor = lr_factor("linear", steps_per_epoch=25, epochs=8, warmup_epochs=0, milestones=[], gamma=0.1)
    assert [factor(s) for s in (0, 100, 199)] == pytest.approx([1.0, 0.5, 1 / 200])
    warm = lr_factor("linear", steps_per_epoch=10, epochs=4, warmup_epochs=1, milestones=[], gamma=0.1)
    assert [warm(s) for s in (0, 9, 10, 25)] == pytest.approx([0.1, 1.0, 1.0, 0.5])


# --- augmentation: alternating flip and reflected shifts -----------------------------------------------------------


def test_alternating_flip_mirrors_half_then_every_image_on_odd_epochs():
    index = torch.arange(1000)
    first = alternate_flips(index, 0, seed=42)
    assert abs(int(first.sum()) - 500) <= 1  # exactly half of any run of indices, to rounding
    assert torch.equal(alternate_flips(index, 1, 42), ~first)
    assert torch.equal(alternate_flips(index, 2, 42), first)
    shuffled = torch.randperm(1000)
    assert torch.equal(alternate_flips(index[shuffled], 0, 42), first[shuffled])  # a property of the index alone
    assert not torch.equal(alternate_flips(index, 0, 7), first)  # the seed picks other coins


def _orientation(x: torch.Tensor) -> torch.Tensor:
    """True where an image's bright side is on the left (the ramps below are dark on the left)."""
    half = x.shape[-1] // 2
    return x[..., :half].mean(dim=(1, 2, 3)) > x[..., half:].mean(dim=(1, 2, 3))


def test_the_loader_shows_each_image_both_ways_on_consecutive_epochs():
    ramp = torch.linspace(0, 255, 16).round().to(torch.uint8).expand(40, 3, 16, 16).contiguous()
    split = Split(ramp, torch.zeros(40, dtype=torch.long))
    augment = BatchAugment("airbench", mean=[0.5] * 3, std=[0.25] * 3, flip="alternate", flip_seed=3)
    loader = DeviceLoader(split, 8, transform=augment, shuffle=True, seed=3)
    seen = {}
    for epoch in range(3):
        loader.set_epoch(epoch)
        order = loader.indices()
        flipped = torch.cat([_orientation(x) for x, _ in loader])
        seen[epoch] = torch.empty(40, dtype=torch.bool)
        seen[epoch][order] = flipped
    assert 15 <= int(seen[0].sum()) <= 25
    assert torch.equal(seen[1], ~seen[0]) and torch.equal(seen[2], seen[0])
    # With random flips the same two epochs agree on some images: the coin is drawn afresh.
    loader = DeviceLoader(split, 8, transform=BatchAugment("airbench", mean=[0.5] * 3, std=[0.25] * 3), shuffle=True)
    runs = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        order, flips = loader.indices(), torch.cat([_orientation(x) for x, _ in loader])
        runs.append(torch.empty(40, dtype=torch.bool).index_put_((order,), flips))
    assert (runs[0] == runs[1]).any()


def test_airbench_shifts_reflect_the_border_instead_of_padding_zeros():
    flat = torch.full((64, 3, 8, 8), 200, dtype=torch.uint8)
    mean, std = [0.5] * 3, [0.25] * 3
    reflected = BatchAugment("airbench", mean=mean, std=std, generator=torch.Generator().manual_seed(0))(flat)
    assert torch.equal(reflected, torch.full_like(reflected, (200 / 255 - 0.5) / 0.25))  # no zeros come in
    zero_padded = BatchAugment("cifar", mean=mean, std=std, generator=torch.Generator().manual_seed(0))(flat)
    assert not torch.equal(zero_padded, reflected)
    # Shifts of at most 2 px: a single bright pixel in the middle stays within 2 px of where it was.
    dot = torch.zeros(256, 1, 9, 9, dtype=torch.uint8)
    dot[..., 4, 4] = 255
    out = BatchAugment("airbench", mean=[0.0], std=[1.0])(dot)
    rows, cols = (out[:, 0] > 0.5).nonzero()[:, 1:].T
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == 25  # every shift is drawn


# --- test-time augmentation ---------------------------------------------------------------------------------------


def test_flip_shift_tta_averages_six_weighted_views():
    x = torch.randn(2, 3, 6, 6)
    forward = lambda batch: batch.flatten(1)  # noqa: E731  (logits that show exactly which view was seen)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., :6, :6], padded[..., 2:, 2:]
    expected = (x + x.flip(-1)) / 4 + sum(v + v.flip(-1) for v in (up_left, down_right)) / 8
    torch.testing.assert_close(tta_logits(forward, x, "flip-shift"), expected.flatten(1))
    torch.testing.assert_close(tta_logits(forward, x, "flip"), ((x + x.flip(-1)) / 2).flatten(1))
    torch.testing.assert_close(tta_logits(forward, x, "none"), x.flatten(1))


# --- BatchNorm overrides, the data hook, the recipe ------------------------------------------------------------------


def test_batchnorm_overrides_reach_every_layer_and_default_to_the_networks_own():
    cfg = make_config("resnet20", dataset="synthetic", bn_momentum=0.3, bn_eps=1e-3)
    norms = [m for m in build_network(cfg, 10, 3, 32).modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 19 and all((m.momentum, m.eps) == (0.3, 1e-3) for m in norms)
    plain = build_network(make_config("airbench94", dataset="synthetic"), 10, 3, 32)
    assert all((m.momentum, m.eps) == (0.4, 1e-12) for m in plain.modules() if isinstance(m, nn.BatchNorm2d))


def test_airbench_recipe_runs_the_whitening_hook_and_says_which_tta_it_tested(tmp_path):
    from moderncnn.data import load_dataset
    from moderncnn.run.recipes import load_recipe

    data = "synthetic:image_size=32,channels=3,num_train=300,num_test=60,num_classes=10"
    settings = load_recipe("airbench").settings_for("airbench94", "smoke", dataset=data)
    cfg = make_config("airbench94", **{**settings, "batch_size": 50, "run_dir": str(tmp_path / "run")})
    assert (cfg.optimizer, cfg.schedule, cfg.flip, cfg.augment, cfg.tta) == (
        "muon", "linear", "alternate", "airbench", "flip-shift"
    )  # fmt: skip
    result = train(cfg, quiet=True)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["tta_views"] == "flip-shift" and results["test_tta"] is True
    assert results["train_pflops"] == pytest.approx(2 * 50 * 0.7078e9 / 1e15, rel=0.01)  # 2 steps of 50 images
    # The whitening filters are those of the first images of the training split, and training left them there.
    split = load_dataset(data, val_size=0, seed=cfg.seed).splits["train"]
    images = BatchAugment("airbench", mean=cfg.mean, std=cfg.std, train=False)(split.images)
    net = AirbenchNet()
    net.init_from_data(images)
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["state_dict"]["net.whiten.weight"]
    torch.testing.assert_close(saved, net.whiten.weight)
    assert evaluate(tmp_path / "run", checkpoint="last").accuracy == pytest.approx(result.test_acc, abs=1e-6)
    assert evaluate(tmp_path / "run", checkpoint="last").views == "flip-shift"  # evaluate repeats the run's views
