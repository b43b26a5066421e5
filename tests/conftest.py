import shutil

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    # Same random inputs in every test, whatever ran before it.
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """One intra-op thread for the test, restored after it: small networks on a few images run faster single-threaded,
    and on a shared 2-core machine extra threads only wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY_RUN_DATA = "synthetic:image_size=28,channels=1,num_train=256,num_test=64"


@pytest.fixture(scope="session")
def _tiny_run_once(tmp_path_factory):
    from moderncnn.engine import make_config, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = make_config("lenet_bn", dataset=TINY_RUN_DATA, epochs=1, batch_size=64, limit_batches=2,
                             run_dir=str(tmp_path_factory.mktemp("tiny-run-once") / "run"))  # fmt: skip
        return train(config, quiet=True).run_dir
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_run(_tiny_run_once, tmp_path_factory):
    """A finished BN-LeNet run on grey 28 px generated images (1 epoch of 2 batches), trained once per test process
    and copied for each test file, which may then change its copy (a file of the run edited, a figure written)."""
    copy = tmp_path_factory.mktemp("tiny-run") / "run"
    shutil.copytree(_tiny_run_once, copy)
    return copy


def torchvision_model(name: str, **kwargs):
    """torchvision's randomly initialised network of that name (its GoogLeNet and Inception-v3 without auxiliary
    heads, as ours are by default)."""
    import torchvision

    if name in ("googlenet", "inception_v3"):
        kwargs = {"aux_logits": False, "init_weights": True, **kwargs}
    return getattr(torchvision.models, name)(weights=None, **kwargs)


def dark_and_light_folder(root):
    """``root/photos``: ``train``, ``val`` and ``test`` folders of dark and light noise images (20x24 RGB PNG, 24, 6
    and 6 per class) and one corrupt file in ``train/dark``: an easy two-class image folder for training runs."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("val", 6), ("test", 6)):
        for c, shade in (("dark", 40), ("light", 215)):
            folder = root / "photos" / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(rng.normal(shade, 20, (20, 24, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    (root / "photos" / "train" / "dark" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return root / "photos"


# Settings that learn dark_and_light_folder whatever the seed (none failed of the 12 to 25 seeds tried per data path and
# precision), in a few seconds. Its only signal is brightness, which BatchNorm takes out of each batch of 8: after
# resnet20's 12 steps at lr 0.05 the running statistics were still so far off that it tested at chance in evaluation
# mode for about 4 seeds in 10, on the cached and the DataLoader path alike. LeNet-BN (4 BatchNorm layers, not 19)
# with 24 steps settles.
EASY_FOLDER_SETTINGS = {
    "model": "lenet_bn",
    "epochs": 4,
    "batch_size": 8,
    "lr": 0.5,
    "schedule": "none",
    "augment": "cifar",
    "resize": 28,
    "num_workers": 1,
}
