"""Published weights: the table, the checksum on every load, loading by name, and every command taking a weight.

The shipped ``lenet_bn-digits`` is the weight under test: its dataset is bundled with scikit-learn, so its card's
test accuracy is re-measured here on the full test split (360 images) in a second.
"""

import dataclasses
import json
import shutil

import pytest
import torch

import moderncnn as mc
from moderncnn.cli import main
from moderncnn.errors import CheckpointError, ConfigError, UsageError
from moderncnn.weights import get_weights_info, load_network, load_state_dict, table
from moderncnn.weights import store as weight_store

SHIPPED = "lenet_bn-digits"


@pytest.fixture(scope="module")
def digits_test():
    from moderncnn.data import load_dataset

    test = load_dataset("digits", val_size=180, seed=42).splits["test"]
    return test.images, test.labels


@pytest.fixture(scope="module")
def sample_png(tmp_path_factory, digits_test):
    """The first test digit (a 0 here), saved as a PNG file in a folder named after its class."""
    from PIL import Image

    images, labels = digits_test
    folder = tmp_path_factory.mktemp("digits") / str(int(labels[0]))
    folder.mkdir()
    path = folder / "first.png"
    Image.fromarray(images[0, 0].numpy()).save(path)
    return path


def accuracy(net, images, labels, info):
    from moderncnn.data.augment import BatchAugment

    x = BatchAugment("none", mean=info.mean, std=info.std, resize=info.input_size, train=False)(images)
    with torch.no_grad():
        return float((net(x).argmax(1) == labels).float().mean())


def test_the_shipped_weight_reproduces_its_card_on_the_full_test_split(digits_test):
    info = mc.get_weights_info(SHIPPED)
    assert SHIPPED in mc.list_weights() and info.bundled and info.dtype in ("float16", "bfloat16", "float32")
    net = mc.create_model("lenet_bn", pretrained="digits").eval()
    assert abs(accuracy(net, *digits_test, info) - info.test_acc) <= 0.002
    assert f"{info.test_acc * 100:.2f}%" in info.card.read_text()  # the card states what the file scores


def test_preprocessing_travels_with_the_weight(digits_test):
    info = get_weights_info(f"weights:{SHIPPED}")  # the command-line spelling works too
    assert (info.in_channels, info.input_size, len(info.class_names)) == (1, 28, 10)
    from PIL import Image

    image = Image.fromarray(digits_test[0][0, 0].numpy())
    x = info.transforms()(image)[None]
    assert x.shape == (1, 1, 28, 28)
    assert int(load_network(info)(x).argmax()) == int(digits_test[1][0])


def test_unknown_names_fail_in_one_line_naming_the_published_ones():
    with pytest.raises(UsageError, match=r"did you mean lenet_bn-digits") as err:
        get_weights_info("lenet_bn-digit")
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="published weights for digits, fashion-mnist, not 'cifar100'"):
        mc.create_model("lenet_bn", pretrained="cifar100")


def test_another_class_count_keeps_the_backbone_and_starts_a_new_classifier():
    trained = load_network(SHIPPED)
    net = mc.create_model("lenet_bn", pretrained="digits", num_classes=4)
    classifier = mc.get_model_info("lenet_bn").classifier
    for key, value in net.state_dict().items():
        if key.startswith(classifier + "."):
            assert value.shape[0] == 4
        else:
            torch.testing.assert_close(value, trained.state_dict()[key])


def test_a_changed_file_is_refused_on_every_load(tmp_path, monkeypatch):
    info = get_weights_info(SHIPPED)
    copy = tmp_path / info.file
    shutil.copyfile(weight_store.BUNDLED / info.file, copy)
    monkeypatch.setattr(weight_store, "BUNDLED", tmp_path)
    load_state_dict(info)  # intact: loads
    data = bytearray(copy.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    copy.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"refusing .*sha256 is .* but the weights table says") as err:
        load_state_dict(info)
    assert "\n" not in str(err.value)


def test_the_cli_refuses_a_changed_file_in_one_line(tmp_path, monkeypatch, capsys, sample_png):
    info = get_weights_info(SHIPPED)
    (tmp_path / info.file).write_bytes((weight_store.BUNDLED / info.file).read_bytes()[:-8] + b"\0" * 8)
    monkeypatch.setattr(weight_store, "BUNDLED", tmp_path)
    assert main(["predict", f"weights:{SHIPPED}", str(sample_png)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("moderncnn predict: error: refusing") and "sha256" in err and "\n" not in err


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_predict_and_evaluate_take_a_weight(capsys, sample_png, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run_cli(capsys, "predict", f"weights:{SHIPPED}", sample_png, "--json")
    assert json.loads(out)["predictions"][0]["label"] == sample_png.parent.name
    out = run_cli(capsys, "evaluate", f"weights:{SHIPPED}", "--json", "--no-tta")
    assert abs(json.loads(out)["accuracy"] - get_weights_info(SHIPPED).test_acc) <= 0.002


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("export", ["--format", "pt2", "--out", "{tmp}/w.pt2"]),
        ("filters", ["--out", "{tmp}/filters.png"]),
        ("features", ["{png}", "--out", "{tmp}/features.png"]),
        ("explain", ["{png}", "--out", "{tmp}/explain"]),
        ("landscape", ["--points", "3", "--subset", "32", "--out", "{tmp}/landscape.png"]),
    ],
)
def test_every_command_that_takes_a_run_takes_a_weight(command, extra, capsys, sample_png, tmp_path):
    args = [a.format(tmp=tmp_path, png=sample_png) for a in extra]
    run_cli(capsys, command, f"weights:{SHIPPED}", *args)
    assert any(tmp_path.iterdir())


def test_serve_loads_a_weight_with_its_accuracy():
    from moderncnn.serve.model import load_model

    served = load_model(f"weights:{SHIPPED}")
    info = get_weights_info(SHIPPED)
    assert (served.name, served.test_accuracy, served.mean) == ("lenet_bn", info.test_acc, info.mean)


def test_the_weights_command_lists_and_prints_cards(capsys):
    out = run_cli(capsys, "weights")
    assert SHIPPED in out and "sha256" in out
    listing = json.loads(run_cli(capsys, "weights", "--json"))
    assert [entry["name"] for entry in listing] == list(table())
    card = run_cli(capsys, "weights", SHIPPED)
    for section in ("## Data and split", "## Recipe", "## Results", "## Robustness to JPEG", "## Limitations"):
        assert section in card
    assert main(["weights", "nothing-here"]) == 2


def test_train_init_from_a_weight(tmp_path):
    from moderncnn.engine import config_from, train
    from moderncnn.run.checkpoint import load_run

    config = config_from(
        None,  # the network comes from the weights
        init_from=f"weights:{SHIPPED}",
        dataset="synthetic:image_size=28,num_train=64,num_test=16,num_classes=4",
        epochs=1,
        batch_size=32,
        lr=1e-9,
        momentum=0.0,
        precision="32",
        run_dir=str(tmp_path / "run"),
    )
    assert config.model == "lenet_bn"
    train(config, quiet=True)
    from moderncnn.engine.module import init_from_weights

    report = init_from_weights(mc.create_model("lenet_bn", num_classes=4, input_size=28), "lenet_bn", SHIPPED)
    assert report.new_classifier and "new classifier for this class count" in str(report)
    net, info = load_run(tmp_path / "run")
    weights = load_network(SHIPPED)
    assert info.mean == get_weights_info(SHIPPED).mean  # 1 channel, as the weights: their normalisation is kept
    first_conv = next(name for name, _ in net.named_parameters())
    torch.testing.assert_close(net.state_dict()[first_conv], weights.state_dict()[first_conv])
    with pytest.raises(ConfigError, match="holds a lenet_bn, not a resnet20"):
        config_from("resnet20", init_from=SHIPPED, dataset="synthetic")


def test_the_demo_points_at_a_cifar10_weight_only_when_one_ships(monkeypatch):
    import moderncnn.weights
    from moderncnn.demo import next_steps

    digits = get_weights_info(SHIPPED)
    monkeypatch.setattr(moderncnn.weights, "table", lambda: {SHIPPED: digits})  # no CIFAR-10 weight
    assert not any("weights:" in command for command, _ in next_steps())
    cifar = {
        name: dataclasses.replace(digits, name=name, network=name.split("-")[0], dataset="cifar10", test_acc=acc)
        for name, acc in (("resnet_uva-cifar10", 0.93), ("resnet20-cifar10", 0.90), ("vgg11-cifar10", 0.95))
    }
    monkeypatch.setattr(moderncnn.weights, "table", lambda: {SHIPPED: digits, **cifar})
    commands = [command for command, _ in next_steps()]
    assert "moderncnn predict weights:resnet20-cifar10 PHOTO.jpg" in commands  # the demo's first choice


def test_the_models_listing_names_each_network_s_weights(capsys, monkeypatch):
    import moderncnn.summarize

    rows = [{"name": name, "family": "", "variant": "", "input_shape": [1, 28, 28], "min_input_size": 4, "params": 1,
             "flops": 1} for name in ("lenet_bn", "resnet18")]  # fmt: skip
    monkeypatch.setattr(moderncnn.summarize, "model_table", lambda family=None: rows)  # FLOPs of every network: slow
    listed = {row["name"]: row for row in json.loads(run_cli(capsys, "models", "--json"))}
    assert "digits" in listed["lenet_bn"]["weights"] and listed["resnet18"]["weights"] == []


def test_every_bundled_file_matches_its_entry_and_the_package_stays_small():
    from moderncnn.reproduce.publish import MAX_BUNDLED_TOTAL

    bundled = [info for info in table().values() if info.bundled]
    for info in bundled:
        data = (weight_store.BUNDLED / info.file).read_bytes()
        assert (len(data), weight_store.sha256_of(data)) == (info.size, info.sha256), info.name
        assert info.card.is_file()
    assert sum(info.size for info in bundled) <= MAX_BUNDLED_TOTAL
    assert {p.name for p in weight_store.BUNDLED.iterdir()} == {info.file for info in bundled}  # no stray files


def test_predicting_with_a_weight_imports_no_torchvision(sample_png):
    """torchvision costs as much start-up time as torch itself; `predict weights:NAME` needs neither it nor
    Lightning (a fresh interpreter, as a user's shell)."""
    import subprocess
    import sys

    code = (
        "import sys; from moderncnn.cli import main\n"
        f"assert main(['predict', 'weights:{SHIPPED}', {str(sample_png)!r}, '--json']) == 0\n"
        "print(sorted(m for m in ('torchvision', 'lightning', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_our_copies_of_torchvision_helpers_match_it():
    import numpy as np
    from PIL import Image
    from torchvision.datasets.folder import IMG_EXTENSIONS
    from torchvision.transforms.v2.functional import pil_to_tensor

    from moderncnn.constants import IMG_EXTENSIONS as ours
    from moderncnn.data.image import pil_to_tensor as our_pil_to_tensor

    assert ours == IMG_EXTENSIONS
    rng = np.random.default_rng(0)
    for mode, pixels in [
        ("L", rng.integers(0, 256, (5, 7), dtype=np.uint8)),
        ("RGB", rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)),
        ("RGBA", rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)),
        ("I;16", rng.integers(0, 65536, (5, 7), dtype=np.uint16)),
        ("F", rng.random((5, 7), dtype=np.float32)),
    ]:
        image = Image.fromarray(pixels, mode=mode) if mode != "I;16" else Image.fromarray(pixels)
        assert torch.equal(our_pil_to_tensor(image), pil_to_tensor(image)), mode
