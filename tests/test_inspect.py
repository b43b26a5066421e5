"""Looking inside trained runs of every family: filters, feature maps, attributions, the landscape and the graph."""

import copy
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback
from PIL import Image
from torch import nn
from torch.nn import functional as F

import moderncnn.engine.module as engine_module
from moderncnn import inspect as mi
from moderncnn.engine import make_config, train
from moderncnn.errors import ModelError, UsageError
from moderncnn.inspect.common import find_layer, load
from moderncnn.inspect.filters import PADDING, conv_weight

engine_train = importlib.import_module("moderncnn.engine.training")  # the function `train` shadows the module

# One network per family at a small input: (model, image side, channels, model options).
FAMILIES = {
    "lenet_bn": (28, 1, {}),
    "alexnet_d2l": (127, 3, {}),  # 2x2 maps after the last pooling, the registry's feature layer (1x1 at 65 px)
    "vgg_d2l": (64, 1, {"width_ratio": 16}),  # 2x2 maps in the last block (1x1 at 32 px: a uniform Grad-CAM)
    "nin": (128, 3, {}),  # 2x2 class maps at the end (1x1 below 128 px)
    "googlenet_d2l": (64, 3, {}),
    "resnet20": (32, 3, {}),
    "densenet_uva": (32, 3, {}),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny trained run per family (2 batches of synthetic images), logged with the graph, and its initial weights."""
    root = tmp_path_factory.mktemp("inspect-runs")
    initial: dict[str, dict] = {}
    first_init = engine_module.initialise

    def recording(model, scheme):
        first_init(model, scheme)
        initial.setdefault(current, copy.deepcopy(model.state_dict()))

    made = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_module, "initialise", recording)
        for current, (size, channels, kwargs) in FAMILIES.items():
            config = make_config(
                current,
                dataset=f"synthetic:image_size={size},channels={channels},num_train=64,num_test=16",
                epochs=1,
                batch_size=16,
                lr=0.05,
                limit_batches=2,
                augment="none",
                resize=size,
                val_size=0,
                model_kwargs=kwargs,
                run_dir=str(root / current),
            )
            made[current] = train(config, quiet=True).run_dir
    yield {name: (made[name], initial[name]) for name in FAMILIES}
    shutil.rmtree(root, ignore_errors=True)  # the AlexNet and VGG checkpoints are 70-90 MB each


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    """A non-square RGB image (37 high, 45 wide), so a map with height and width swapped would show."""
    path = tmp_path_factory.mktemp("images") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8)).save(path)
    return path


# ---------------------------------------------------------------------------------------------------- layers


def _one_per_kind() -> list[str]:
    from moderncnn.registry import get_model_info, list_models

    seen, names = set(), []
    for name in list_models():
        info = get_model_info(name)
        if (info.family, info.variant) not in seen:
            seen.add((info.family, info.variant))
            names.append(name)
    return names


@pytest.mark.parametrize("name", _one_per_kind())
def test_the_default_layer_outputs_convolutional_maps(name):
    from moderncnn.registry import create_model, get_model_info

    info = get_model_info(name)
    size = info.input_size if info.fixed_input_size else max(info.min_input_size, 32)
    net = create_model(name).eval()
    layer = find_layer(net, mi.default_layer(net))
    outputs = []
    handle = layer.register_forward_hook(lambda module, args, out: outputs.append(out))
    with torch.no_grad():
        net(torch.zeros(1, info.in_channels, size, size))
    handle.remove()
    assert len(outputs) == 1 and outputs[0].dim() == 4, "Grad-CAM needs the maps (N, C, H, W) of one call"
    convolutions = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convolutions and outputs[0].shape[1] > 1  # feature maps of a convolutional stage, not logits


def test_an_unknown_layer_is_named_with_the_choices():
    from moderncnn.registry import create_model

    net = create_model("resnet20")
    with pytest.raises(ModelError, match="no layer 'layer9'.*conv1, bn1, relu, layer1"):
        find_layer(net, "layer9")
    with pytest.raises(ModelError, match="layer1 is a Sequential, not a Conv2d; convolutions of this network: conv1"):
        conv_weight(net, "layer1")
    with pytest.raises(ModelError, match="no layer 'nope'"):
        mi.feature_maps(net.eval(), torch.zeros(1, 3, 32, 32), ["nope"])


# ---------------------------------------------------------------------------------------------------- filters


@pytest.mark.parametrize("name", FAMILIES)
def test_filters_one_tile_per_trained_filter(runs, name, tmp_path):
    run, initial = runs[name]
    plot = mi.plot_run_filters(run, tmp_path / "filters.png")
    net, _ = load(run)
    layer, weight = conv_weight(net)
    assert plot.layer == layer and plot.shape == tuple(weight.shape)
    assert Image.open(plot.path).size[0] > 100
    # The grid holds exactly one tile per output channel, each the filter scaled to [0, 1] on its own.
    grid = mi.filter_grid(plot.tiles)
    out, k = weight.shape[0], weight.shape[-1]
    columns = max(1, round(out**0.5))
    rows = -(-out // columns)
    assert grid.shape[1:] == (rows * (k + PADDING) + PADDING, columns * (k + PADDING) + PADDING)
    channels = 3 if weight.shape[1] == 3 else 1
    assert plot.tiles.shape == (out, channels, k, k)
    for i in (0, out - 1):
        r, c = divmod(i, columns)
        top, left = PADDING + r * (k + PADDING), PADDING + c * (k + PADDING)
        tile = grid[:channels, top : top + k, left : left + k]
        w = weight[i] if channels == 3 else weight[i].mean(dim=0, keepdim=True)
        torch.testing.assert_close(tile, (w - w.min()) / (w.max() - w.min()))
    # Trained, not initial: the run's weights moved (two steps move VGG's first layer by only ~1e-4), so its tiles
    # differ from the tiles of the weights the run started from, by more than the tolerance of the check above.
    start = initial[f"{layer}.weight"]
    assert not torch.equal(start, weight)
    assert (mi.filter_tiles(start) - plot.tiles).abs().max() > 5e-5


# ---------------------------------------------------------------------------------------------------- features


@pytest.mark.parametrize("name", FAMILIES)
def test_features_are_the_outputs_of_the_stages(runs, name, image_file, tmp_path):
    run, _ = runs[name]
    plot = mi.plot_run_features(run, image_file, tmp_path / "features.png")
    net, hparams = load(run)
    assert plot.path.is_file() and plot.shapes
    # The same activations, read with plain forward hooks on the top-level children.
    x = mi.common.read_image(image_file, hparams)[1][None]
    seen = {}
    handles = [
        child.register_forward_hook(lambda m, a, out, name=child_name: seen.setdefault(name, out))
        for child_name, child in net.named_children()
    ]
    with torch.no_grad():
        net(x)
    for handle in handles:
        handle.remove()
    expected = [n for n, out in seen.items() if out.dim() == 4 and out.shape[2:].numel() > 1]
    assert list(plot.shapes) == expected
    maps = mi.feature_maps(net, x)
    for stage in expected:
        assert plot.shapes[stage] == tuple(seen[stage].shape[1:])
        torch.testing.assert_close(maps[stage], seen[stage])


def test_named_layers_and_the_layer_list(runs, image_file, tmp_path):
    run, _ = runs["resnet20"]
    names = mi.run_layer_names(run)
    assert names[0] == "x" and "layer2.0.conv1" in names and names[-1] == "fc"
    plot = mi.plot_run_features(run, image_file, tmp_path / "f.png", layers=["layer2.0.conv1", "layer3"])
    assert plot.shapes == {"layer2.0.conv1": (32, 16, 16), "layer3": (64, 8, 8)}


# ---------------------------------------------------------------------------------------------------- explain


@pytest.mark.parametrize("name", FAMILIES)
def test_explain_writes_an_overlay_and_the_raw_map_of_every_method(runs, name, image_file, tmp_path):
    run, _ = runs[name]
    for method in mi.METHODS:
        (explanation,), failures = mi.explain_images(
            run, [image_file], tmp_path, method=method, save_maps=True, ig_steps=8
        )
        assert failures == []
        assert explanation.overlay.is_file() and explanation.overlay.parent == tmp_path
        heat = np.load(explanation.map_path)
        assert heat.dtype == np.float32 and heat.shape == (37, 45) and np.isfinite(heat).all()
        assert heat.std() > 1e-3 * np.abs(heat).max(), f"{method}: a flat map explains nothing"
        if method.startswith("gradcam"):
            assert heat.min() >= 0  # ReLU'd class evidence


@pytest.mark.parametrize("name", FAMILIES)
def test_integrated_gradients_add_up_to_the_score_difference(runs, name, image_file):
    run, hparams = runs[name][0], load(runs[name][0])[1]
    net, _ = load(run)
    x = mi.common.read_image(image_file, hparams)[1][None]
    result = mi.attribute(net, x, method="integrated-gradients", ig_steps=64)
    with torch.no_grad():
        gap = float(net(x)[0, result.targets[0]] - net(torch.zeros_like(x))[0, result.targets[0]])
    # Completeness (Sundararajan et al.): the attributions sum to the score's rise from the baseline. Captum's
    # convergence delta is their sum minus that rise; the maps keep the sum (the channels are summed, nothing else).
    delta = float(result.delta[0])
    assert abs(delta) < 0.02 * abs(gap) + 1e-3
    assert float(result.maps.sum()) == pytest.approx(gap + delta, abs=1e-4 * abs(gap) + 1e-5)


def test_explain_marks_a_mistake_and_takes_a_class_by_name(runs, tmp_path):
    run, _ = runs["resnet20"]
    names = load(run)[1].class_names
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    probe = tmp_path / "probe.png"
    Image.fromarray(pixels).save(probe)
    (first,), _ = mi.explain_images(run, probe, tmp_path / "a")
    other = next(n for n in names if n != first.label)
    (tmp_path / other).mkdir()
    shutil.copy(probe, tmp_path / other / "probe.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    explanations, failures = mi.explain_images(
        run, [tmp_path / other, tmp_path / "broken.png"], tmp_path / "b", target=names[3], method="saliency"
    )
    (marked,) = explanations
    assert marked.wrong and marked.true_label == other and marked.label == first.label
    assert marked.target == names[3] and marked.overlay.name == "probe_saliency.png"
    assert [Path(f.path).name for f in failures] == ["broken.png"]
    with pytest.raises(UsageError, match="unknown class 'zebra'; the run's classes are 0deg, 18deg"):
        mi.explain_images(run, probe, tmp_path, target="zebra")
    with pytest.raises(UsageError, match="unknown attribution method"):
        mi.explain_images(run, probe, tmp_path, method="lime")


def test_gradcam_plus_plus_weights_match_the_closed_form():
    # Conv -> ReLU -> global average pool -> linear: at the ReLU's output the score's gradient is w_ck / HW at every
    # position, so eq. 19's weights reduce to HW * relu(g_k) / (2 + g_k * sum(A_k)), with g_k = w_ck / HW.
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    net = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.randn(1, 3, 6, 6)
    result = mi.attribute(net, x, method="gradcam++", target=2, layer="1")
    with torch.no_grad():
        acts = F.relu(conv(x))[0]
    g = net[4].weight[2].detach() / 36
    weights = 36 * F.relu(g) / (2 + g * acts.sum(dim=(1, 2)))
    expected = F.relu((weights[:, None, None] * acts).sum(dim=0))
    torch.testing.assert_close(result.maps[0], expected)  # a 6x6 layer on a 6x6 input: no resizing
    cam = mi.attribute(net, x, method="gradcam", target=2, layer="1").maps[0]
    assert not torch.allclose(cam / cam.max(), expected / expected.max(), atol=1e-3)  # the two methods differ here


# ---------------------------------------------------------------------------------------------------- landscape


@pytest.mark.parametrize("name", FAMILIES)
def test_landscape_centre_is_the_evaluated_loss(runs, name, tmp_path):
    run, _ = runs[name]
    net, hparams = load(run)
    result = mi.plot_run_landscape(run, tmp_path / "l.png", dim=1, points=3, span=0.5, subset=24, seed=3)
    x, y = mi.training_subset(hparams, 24, seed=3)
    with torch.no_grad():
        evaluated = float(F.cross_entropy(net(x), y))
    assert result.centre == pytest.approx(evaluated, rel=1e-5)
    assert result.loss.shape == (3,) and result.png.is_file()
    assert result.csv.read_text().splitlines()[0] == "alpha,loss,accuracy" and result.images == 24


def test_directions_are_filter_normalised_and_seeded(runs):
    net, _ = load(runs["resnet20"][0])
    first, second = mi.random_directions(net, 2, seed=5)
    again = mi.random_directions(net, 2, seed=5)
    other = mi.random_directions(net, 1, seed=6)[0]
    for name, p in net.named_parameters():
        assert torch.equal(first[name], again[0][name]) and torch.equal(second[name], again[1][name])
        if p.dim() <= 1:
            assert not first[name].any(), f"{name}: biases and BatchNorm weights are not perturbed"
            continue
        for d in (first[name], second[name]):
            torch.testing.assert_close(d.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1))
        assert not torch.allclose(first[name], second[name]) and not torch.allclose(first[name], other[name])


def test_loss_surface_moves_along_the_directions_without_touching_the_network(runs):
    net, hparams = load(runs["resnet20"][0])
    x, y = mi.training_subset(hparams, 16, seed=0)
    (direction,) = mi.random_directions(net, 1, seed=1)
    before = copy.deepcopy(net.state_dict())
    loss, _ = mi.loss_surface(net, x, y, [direction], torch.tensor([0.25]))
    moved = copy.deepcopy(net)
    with torch.no_grad():
        for name, p in moved.named_parameters():
            p.add_(0.25 * direction[name])
        expected = F.cross_entropy(moved(x), y)
    torch.testing.assert_close(loss[0], expected)
    # Looking around the weights leaves them, and BatchNorm's running statistics, as they were.
    after = net.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_a_2d_landscape_writes_every_point(runs, tmp_path):
    result = mi.plot_run_landscape(runs["lenet_bn"][0], tmp_path / "l2.png", dim=2, points=3, subset=16)
    rows = result.csv.read_text().splitlines()
    assert rows[0] == "alpha,beta,loss,accuracy" and len(rows) == 1 + 9
    assert rows[5].startswith("0,0,") and float(rows[5].split(",")[2]) == pytest.approx(result.centre, rel=1e-5)
    with pytest.raises(UsageError, match="points must be odd"):
        mi.plot_run_landscape(runs["lenet_bn"][0], tmp_path / "x.png", points=4)


# ---------------------------------------------------------------------------------------------------- graph


def _graph_nodes(run: Path) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run / "tensorboard"))  # every event file of the folder (fit, then test)
    accumulator.Reload()
    try:
        graph = accumulator.Graph()
    except ValueError:  # no graph in the event files
        return []
    return [node.op for node in graph.node]


@pytest.mark.parametrize("name", FAMILIES)
def test_the_run_logs_its_graph_to_tensorboard(runs, name):
    ops = _graph_nodes(runs[name][0])
    assert "aten::_convolution" in ops or "aten::conv2d" in ops, sorted(set(ops))[:20]


def test_logging_the_graph_changes_nothing_in_the_run(tmp_path, monkeypatch):
    def run(name):
        config = make_config(
            "lenet_bn", dataset="synthetic:image_size=28,num_train=128,num_test=32", epochs=1, batch_size=32,
            limit_batches=2, run_dir=str(tmp_path / name), resize=28, augment="none",
        )  # fmt: skip
        train(config, quiet=True)
        return torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]

    with monkeypatch.context() as patch:  # the same run without the graph callback the Trainer always has
        patch.setattr(engine_train, "GraphLogger", lambda: Callback())
        plain = run("plain")
    assert not _graph_nodes(tmp_path / "plain")
    graphed = run("graphed")
    assert _graph_nodes(tmp_path / "graphed")
    assert plain.keys() == graphed.keys()
    for key in plain:  # BatchNorm's running statistics included: the trace ran in evaluation mode
        assert torch.equal(plain[key], graphed[key]), key


def test_a_network_that_cannot_be_traced_costs_a_warning_not_the_run(tmp_path, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter

    def refuse(self, *args, **kwargs):
        raise RuntimeError("cannot trace this\nsecond line")

    monkeypatch.setattr(SummaryWriter, "add_graph", refuse)
    config = make_config(
        "lenet_bn", dataset="synthetic:image_size=28,num_train=64,num_test=16", epochs=1, batch_size=32,
        limit_batches=1, run_dir=str(tmp_path / "r"), resize=28, augment="none",
    )  # fmt: skip
    with pytest.warns(UserWarning, match=r"no TensorBoard graph .*RuntimeError: cannot trace this\)"):
        result = train(config, quiet=True)
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()


# ---------------------------------------------------------------------------------------------------- CLI


def cli(capsys, *argv):
    import argparse

    from moderncnn.cli import inspect as commands_inspect

    parser = argparse.ArgumentParser(prog="moderncnn")
    commands_inspect.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_commands(runs, image_file, tmp_path, capsys):
    run = runs["resnet20"][0]
    code, out, _ = cli(capsys, "filters", run, "--out", tmp_path / "f.png")
    assert code == 0 and out.startswith(f"wrote {tmp_path / 'f.png'} (conv1: 16 filters of 3x3x3)")
    code, out, _ = cli(capsys, "features", run, "--list")
    assert code == 0 and out.splitlines() == mi.run_layer_names(run)[1:]
    code, out, _ = cli(capsys, "features", run, image_file, "--layers", "layer1,layer3", "--out", tmp_path / "g.png")
    assert code == 0 and out == f"wrote {tmp_path / 'g.png'} (layer1, layer3)\n"
    with pytest.raises(UsageError, match="features needs an IMAGE"):
        cli(capsys, "features", run)
    (tmp_path / "bad.png").write_bytes(b"no")
    code, out, err = cli(
        capsys, "explain", run, image_file, tmp_path / "bad.png", "--method", "gradcam++", "--save-maps",
        "--out", tmp_path / "ex",
    )  # fmt: skip
    assert code == 1 and "skipped" in err and "bad.png" in err
    assert sorted(p.name for p in (tmp_path / "ex").iterdir()) == ["photo_gradcampp.npy", "photo_gradcampp.png"]
    code, out, _ = cli(
        capsys, "landscape", run, "--dim", "2", "--points", "3", "--subset", "8", "--out", tmp_path / "land.png"
    )
    assert code == 0 and "9 points x 8 training images" in out and (tmp_path / "land.csv").is_file()


def test_cli_module_loads_nothing_heavy_and_lists_the_library_methods():
    from moderncnn.cli import inspect as commands_inspect

    assert commands_inspect.METHODS == mi.METHODS
    heavy = ("lightning", "matplotlib", "captum", "torchvision", "tensorboard")
    code = f"import sys, moderncnn.cli.inspect; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_images_with_the_same_name_get_distinct_overlays():
    from moderncnn.inspect.explain import file_stems

    paths = [Path("a/cat/1.png"), Path("a/dog/1.png"), Path("b/dog/1.jpg"), Path("x/2.png")]
    names = file_stems(paths)
    assert names[:2] == ["cat_1", "dog_1"] and names[3] == "2" and len(set(names)) == 4


def test_predict_writes_overlays_beside_the_predictions(runs, image_file, tmp_path, capsys):
    from moderncnn.cli import main

    run = runs["resnet20"][0]
    # JSON: the table folds long paths at any character (a temporary folder's name decides where), the JSON does not.
    assert main(["predict", str(run), str(image_file), "--explain", str(tmp_path / "why"), "--json"]) == 0
    out, err = capsys.readouterr()
    assert [p["path"] for p in json.loads(out)["predictions"]] == [str(image_file)] and "1 Grad-CAM overlays" in err
    assert [p.name for p in (tmp_path / "why").iterdir()] == ["photo_gradcam.png"]
