"""What every tutorial page shares: the budget it runs at, where its runs go, and how it shows pictures and tables.

Two environment variables change how a page runs, never what it shows:

- ``MODERNCNN_DOCS_SMOKE=1``: the smoke budget (one epoch of two batches of 32) on small generated images of the same
  shape as the page's dataset, so that every page runs in seconds (CI executes them all this way). The numbers
  printed then mean nothing; the page says so.
- ``MODERNCNN_DOCS_RUNS=DIR``: a finished run directory for the page's network under ``DIR`` (``DIR/NETWORK``,
  ``DIR/RECIPE-BUDGET/NETWORK`` or ``DIR/reproduce/RECIPE-BUDGET/NETWORK``, as ``moderncnn reproduce`` writes them) is
  loaded instead of training again, and the page says which.

Otherwise a page trains with the recipe's ``fast`` budget into ``runs/docs/`` of the checkout, resuming a run that was
interrupted and loading one that finished.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from IPython.display import Image, Markdown, display

from moderncnn.engine import make_config, train
from moderncnn.reproduce import load_recipe
from moderncnn.rundir import RunDir

# A kernel has no progress-bar widgets; tqdm says so on every page otherwise.
warnings.filterwarnings("ignore", message="IProgress not found")

SMOKE = os.environ.get("MODERNCNN_DOCS_SMOKE") == "1"
RUNS = os.environ.get("MODERNCNN_DOCS_RUNS")
BUDGET = "smoke" if SMOKE else "fast"
# Generated images of each recipe dataset's shape: a smoke run must not need the real data (CI may not have it).
SMOKE_DATA = {
    "fashion-mnist": "synthetic:image_size=28,channels=1,num_train=512,num_test=64",
    "cifar10": "synthetic:image_size=32,channels=3,num_train=512,num_test=64",
}


def _run_root() -> Path:
    if SMOKE:
        return Path(tempfile.mkdtemp(prefix="moderncnn-docs-"))
    here = Path.cwd().resolve()
    checkout = next((p for p in (here, *here.parents) if (p / "pyproject.toml").exists()), here)
    return checkout / "runs" / "docs"


RUN_ROOT = _run_root()


def settings(recipe: str, model: str, **overrides) -> dict:
    """The settings of ``model`` under ``recipe``'s budget, with ``overrides`` on top.

    The budget is ``fast`` (a recipe without one: ``full``); with MODERNCNN_DOCS_SMOKE=1 it is ``smoke``, on
    generated images, and an ``epochs`` override is dropped so the run stays two batches long.
    """
    source = load_recipe(recipe)
    budget = BUDGET if BUDGET in source.budgets else "full"
    if SMOKE:
        overrides.setdefault("dataset", SMOKE_DATA.get(source.dataset, source.dataset))
        overrides.update(epochs=1, limit_batches=2, batch_size=32)
    values = source.settings_for(model, budget, **overrides)
    if SMOKE and isinstance(values.get("val_size"), int) and values["val_size"] > 64:
        values["val_size"] = 64  # the generated training split has 512 images
    return values


def finished_run(model: str, recipe: str, name: str | None = None) -> Path | None:
    """A finished run of ``model`` under MODERNCNN_DOCS_RUNS, if that is set and holds one."""
    if not RUNS or SMOKE:
        return None
    name = name or model
    root, folder = Path(RUNS), f"{recipe}-{BUDGET}"
    for candidate in (root / name, root / folder / name, root / "reproduce" / folder / name):
        if RunDir(candidate).is_finished:
            return candidate
    return None


def train_or_load(model: str, recipe: str, values: dict, name: str | None = None) -> Path:
    """Train ``model`` with ``values`` (or load a finished run) and return its run directory.

    Args:
        model: the registered network.
        recipe: the recipe the settings come from (to find a finished run of it under MODERNCNN_DOCS_RUNS).
        values: the run's settings (:func:`settings`).
        name: the run's folder name, when one page trains the same network twice (default: ``model``).
    """
    loaded = finished_run(model, recipe, name)
    if loaded is not None:
        display(Markdown(f"**Loaded the finished run `{loaded}`** (MODERNCNN_DOCS_RUNS): not trained again here."))
        print(RunDir(loaded).read_results().get("summary", ""))
        return loaded
    run_dir = RUN_ROOT / BUDGET / (name or model)
    if RunDir(run_dir).is_finished:
        print(f"already trained: {run_dir}")
        return run_dir
    if SMOKE:
        display(Markdown("*Smoke run: two batches of generated images, to check that the page runs. "
                         "Its numbers mean nothing.*"))  # fmt: skip
    if RunDir(run_dir).is_run:
        result = train(None, resume=run_dir, quiet=True)
    else:
        result = train(make_config(model, **values, run_dir=str(run_dir)), quiet=True)
    print(result)
    return Path(result.run_dir)


def show(path: str | Path, width: int | None = None) -> None:
    """Show a PNG in the page (stored in the executed notebook)."""
    display(Image(filename=str(path), width=width))


def beside_published(run: str | Path, recipe: str) -> None:
    """A table of the run's figures beside the ones the recipe's source published for the network."""
    from moderncnn.reports.compare import RunRecord

    source = load_recipe(recipe)
    ours = RunRecord.read(run)
    network = source.network(ours.model)
    published = network.published if network else {}
    rows = ["| | published | ours | difference |", "|---|--:|--:|--:|"]
    for column in source.published_columns:
        theirs = published.get(column["key"])
        if theirs is None:
            continue
        mine = getattr(ours, column["ours"], None)
        if mine is None:
            continue
        if column["compare"] == "diff":
            change = f"{mine - theirs:+.3f}" if isinstance(theirs, float) else f"{mine - theirs:+,}"
        else:
            change = f"{mine / theirs:.2f}x"
        rows.append(f"| {column['label']} | {_number(theirs)} | {_number(mine)} | {change} |")
    epochs = f"{ours.epochs} epoch{'s' if ours.epochs != 1 else ''}"
    note = f"Our run: {epochs}, {ours.wall_minutes:.1f} minutes on {ours.device_name or ours.device}."
    if SMOKE:
        note += " **Smoke run: not comparable.**"
    display(Markdown("\n".join(rows) + "\n\n" + note))


def _number(value) -> str:
    if isinstance(value, float) and abs(value) < 1:
        return f"{value:.3f}"  # accuracies
    if isinstance(value, float) and abs(value) < 1000:
        return f"{value:.3g}"  # seconds, minutes, PFLOPs
    return f"{value:,.0f}"


def test_images(run: str | Path, out: str | Path, count: int = 3) -> list[Path]:
    """Write the first ``count`` test images of the run's dataset as PNG files, in folders named by class."""
    from moderncnn.engine import TrainConfig

    config = TrainConfig.load(Path(run) / "config.yaml")
    return dataset_images(config.dataset, out, count, data_dir=config.data_dir)


def dataset_images(dataset: str, out: str | Path, count: int = 3, data_dir: str | None = None) -> list[Path]:
    """Write the first ``count`` test images of ``dataset`` (smoke: generated ones) as PNGs in class folders."""
    from PIL import Image as PILImage

    from moderncnn.data import load_dataset

    if SMOKE:
        dataset = SMOKE_DATA.get(dataset, dataset)
    data = load_dataset(dataset, data_dir=data_dir, val_size=0)
    test = data.splits["test"]
    paths = []
    for i in range(min(count, len(test))):
        image = test.images[i]
        array = image.permute(1, 2, 0).numpy() if image.shape[0] == 3 else image[0].numpy()
        path = Path(out) / data.classes[int(test.labels[i])] / f"test-{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        PILImage.fromarray(array).save(path)
        paths.append(path)
    return paths


def gradcam_layer(run: str | Path) -> str | None:
    """The layer a page's Grad-CAM looks at: ``None`` (the network's feature layer, as `explain` picks) unless that
    layer has 1x1 maps at the run's input size, as it has at the smallest input a network accepts, where a map would be
    uniform; then the deepest module before it whose maps are larger (the page prints which)."""
    import torch

    from moderncnn.registry import get_model_info
    from moderncnn.run.checkpoint import load_run

    net, info = load_run(run, "last")
    sizes: dict[str, int] = {}

    def record(name: str):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                sizes[name] = output.shape[2] * output.shape[3]

        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in net.named_modules() if name]
    with torch.no_grad():
        net(torch.zeros(1, info.in_channels, info.input_size, info.input_size))
    for handle in handles:
        handle.remove()
    feature = get_model_info(info.config.model).feature_layer
    if sizes.get(feature, 2) > 1:
        return None
    order = list(sizes)  # the order the modules finished in: a block after the layers inside it
    before = order[: order.index(feature)] if feature in order else order
    larger = [name for name in before if sizes[name] > 1]
    return larger[-1] if larger else None
