"""Publishing a finished run as weights: a safetensors file, a weights-table entry and a model card.

:func:`publish_run` reads the run's ``results.json`` and ``config.yaml`` and the checkpoint its test accuracy came
from, stores the weights in the smallest dtype whose test accuracy stays within ``tolerance`` of the run's (float16,
then bfloat16, then float32; each measured on the full test split), and refuses a run whose converted weights miss
the run's test accuracy by more than that. It then measures what the card reports about the stored file: test
accuracy plain and with flip TTA, per class, the confusion matrix, and the accuracy on the test split re-encoded as
JPEG (PIL, quality 95 and 75: what phones and the web give). ``benchmarks/publish_weights.py`` is its command line.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from moderncnn.data import Split, load_dataset
from moderncnn.engine.module import tta_logits
from moderncnn.errors import CheckpointError, DataError, UsageError
from moderncnn.reports.confusion import plot_confusion
from moderncnn.run.checkpoint import RunInfo, load_run
from moderncnn.run.config import tta_views
from moderncnn.rundir import RunDir
from moderncnn.weights.store import sha256_of
from moderncnn.weights.table import BUNDLED, CARDS, TABLE, WeightsInfo, _read_table, write_table

TOLERANCE = 0.002  # the most the stored weights' test accuracy may differ from the run's
MAX_BUNDLED_BYTES = 2 * 1024 * 1024  # larger files are downloaded (url_base), not shipped in the package
MAX_BUNDLED_TOTAL = 20 * 1024 * 1024
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
JPEG_QUALITIES = (95, 75)
# Settings that say where a run lived, not how it trained: left out of the table and the card.
LOCAL_SETTINGS = ("run_dir", "data_dir")


@dataclass
class Measured:
    """The stored file's figures on the full test split."""

    accuracy: float
    accuracy_tta: float
    confusion: list[list[int]]
    jpeg: dict[str, float]
    images: int


def publish_run(
    run_dir: str | Path,
    *,
    data_dir: str | None = None,
    table_path: Path = TABLE,
    files_dir: Path = BUNDLED,
    cards_dir: Path = CARDS,
    url_base: str | None = None,
    upload_dir: Path | None = None,
    recipe: str | None = None,
    tolerance: float = TOLERANCE,
    max_bundled_bytes: int = MAX_BUNDLED_BYTES,
    log=print,
) -> WeightsInfo:
    """Turn the finished run ``run_dir`` into published weights (file, table entry, card); returns the entry.

    Args:
        run_dir: a finished run directory (``results.json``, ``config.yaml``, its checkpoints).
        data_dir: data root of its dataset (default: the usual one).
        table_path, files_dir, cards_dir: where the table, bundled files and cards are written (the package's).
        url_base: for a file above ``MAX_BUNDLED_BYTES``: the URL folder it will be served from; the file is written
            to ``upload_dir`` instead of the package and the entry gets ``url_base/<file>``.
        recipe: how it was trained, in a few words (default: the recipe and budget of a ``reproduce`` run, else
            ``moderncnn train``).
        tolerance: the largest accepted difference between the stored weights' test accuracy and the run's.
        max_bundled_bytes: the largest file shipped in the package (the issue's 2 MB; airbench94 takes 4 MB in
            float16); the package's files stay within ``MAX_BUNDLED_TOTAL`` whatever this is.

    Raises:
        CheckpointError: no ``results.json`` (an unfinished run or no run), or a test accuracy that the converted
            weights do not reproduce within ``tolerance``. DataError: a dataset that is not a named one.
    """
    run = RunDir(run_dir)
    results = run.read_results()  # refuses a run without results.json, in one line
    settings = run.read_config()
    tested = run.best if settings.get("test_checkpoint") == "best" else run.last
    net, info = load_run(tested)
    tta = tta_views(info.config.tta)  # the views the run's test averaged over (none, flip, flip-shift)
    run_acc = float(results["test_acc"])
    images, labels, splits = _test_split(info, data_dir)
    name = f"{info.model}-{info.config.dataset}"
    log(f"{name}: run test acc {run_acc:.4f} ({'' if tta == 'none' else tta + ' TTA, '}{len(labels):,} test images)")

    chosen = None
    for dtype in DTYPES:
        state = {k: v.to(DTYPES[dtype]) if v.is_floating_point() else v for k, v in net.state_dict().items()}
        acc = _accuracy(_reload(info, state), images, labels, info, tta)
        log(f"  stored as {dtype}: test acc {acc:.4f} ({acc - run_acc:+.4f})")
        if abs(acc - run_acc) <= tolerance:
            chosen = dtype, state
            break
    if chosen is None:
        raise CheckpointError(
            f"refusing {run.path}: its weights reach test acc {acc:.4f} even as float32, not the {run_acc:.4f} its "
            f"results.json reports (more than {tolerance} apart); was the checkpoint or the data changed after the run?"
        )
    dtype, state = chosen
    from safetensors.torch import save

    data = save({k: v.contiguous() for k, v in state.items()}, metadata={"format": "pt", "name": name})
    url = None
    target_dir = files_dir
    if len(data) > max_bundled_bytes or _bundled_total(files_dir, name) + len(data) > MAX_BUNDLED_TOTAL:
        if url_base is None or upload_dir is None:
            raise UsageError(
                f"{name} takes {len(data) / 1e6:.1f} MB, above what ships in the package; give url_base (and "
                "upload_dir) to publish it for download"
            )
        url, target_dir = f"{url_base.rstrip('/')}/{name}.safetensors", Path(upload_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    (target_dir / f"{name}.safetensors").write_bytes(data)

    views = "flip" if tta == "none" else tta  # the card's second figure: the run's own views, else the mirror
    measured = _measure(_reload(info, state), images, labels, info, views)
    entry = _entry(name, info, results, settings, run, data, dtype, url, measured, recipe, views)
    cards_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion(measured.confusion, info.class_names, cards_dir / f"{name}-confusion.png", title=f"{name} (test)")
    from moderncnn.reproduce.card import write_card

    write_card(entry, results, measured, splits, cards_dir / f"{name}.md")
    entries = dict(_read_table(table_path))
    entries[name] = entry
    write_table(entries, table_path)
    log(
        f"  published {name}: {dtype}, {len(data) / 1e3:.0f} kB, test acc {measured.accuracy:.4f} "
        f"({views} TTA {measured.accuracy_tta:.4f}), JPEG q95 {measured.jpeg['95']:.4f}, q75 {measured.jpeg['75']:.4f}"
    )
    return entry


def _bundled_total(files_dir: Path, name: str) -> int:
    return sum(p.stat().st_size for p in Path(files_dir).glob("*.safetensors") if p.stem != name)


def _test_split(info: RunInfo, data_dir: str | None) -> tuple[Tensor, Tensor, dict[str, int]]:
    config = info.config
    dataset = load_dataset(
        config.dataset, data_dir=data_dir or config.data_dir, val_size=config.val_size, seed=config.seed
    )
    test = dataset.splits.get("test")
    if not isinstance(test, Split):
        raise DataError(f"{config.dataset}: only the named datasets (held in memory) can be published")
    return test.images, test.labels, {split: len(part) for split, part in dataset.splits.items()}


def _reload(info: RunInfo, state: dict[str, Tensor]) -> nn.Module:
    """A fresh network holding ``state`` (converted back to float32 as every load does)."""
    net = info.build()
    net.load_state_dict(state, strict=True)
    return net.eval()


def predictions(net: nn.Module, images: Tensor, info: RunInfo, tta: str = "none", batch: int = 500) -> Tensor:
    """The predicted class of each uint8 image ``(N, C, H, W)``, preprocessed as ``evaluate`` does, with the
    test-time augmentation ``tta`` (``none``, ``flip``, ``flip-shift``)."""
    preprocess = info.preprocess()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = preprocess(images[start : start + batch])
            logits = tta_logits(net, x, tta)
            out.append(logits.argmax(dim=1))
    return torch.cat(out)


def _accuracy(net: nn.Module, images: Tensor, labels: Tensor, info: RunInfo, tta: str) -> float:
    return float((predictions(net, images, info, tta) == labels).float().mean())


def jpeg_images(images: Tensor, quality: int) -> Tensor:
    """Each uint8 image ``(N, C, H, W)`` saved as a JPEG file by PIL at ``quality`` and read back."""
    from PIL import Image

    out = []
    for image in images:
        pixels = image.permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, "JPEG", quality=quality)
        decoded = np.asarray(Image.open(buffer))
        out.append(torch.from_numpy(decoded.reshape(pixels.shape).copy()).permute(2, 0, 1))
    return torch.stack(out)


def _measure(net: nn.Module, images: Tensor, labels: Tensor, info: RunInfo, views: str) -> Measured:
    predicted = predictions(net, images, info)
    k = info.num_classes
    confusion = torch.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
    jpeg = {
        str(q): _accuracy(net, jpeg_images(images, q), labels, info, tta="none") for q in JPEG_QUALITIES
    }  # fmt: skip
    return Measured(
        float((predicted == labels).float().mean()),
        _accuracy(net, images, labels, info, tta=views),
        confusion.tolist(),
        jpeg,
        len(labels),
    )


def _entry(name, info, results, settings, run, data, dtype, url, measured, recipe, views) -> WeightsInfo:
    from moderncnn.registry import get_model_info

    kwargs = dict(info.config.model_kwargs)  # as build_network builds it: the input size of a fixed-size classifier
    if get_model_info(info.model).fixed_input_size:
        kwargs.setdefault("input_size", info.input_size)
    origin = run.read_origin()
    return WeightsInfo(
        name=name,
        network=info.model,
        dataset=info.config.dataset,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        input_size=info.input_size,
        mean=[round(float(m), 8) for m in info.mean],
        std=[round(float(s), 8) for s in info.std],
        class_names=list(info.class_names),
        sha256=sha256_of(data),
        file=f"{name}.safetensors",
        size=len(data),
        dtype=dtype,
        model_kwargs=kwargs,
        url=url,
        test_acc=round(measured.accuracy, 6),
        test_acc_tta=round(measured.accuracy_tta, 6),
        tta=views,
        jpeg_acc={q: round(v, 6) for q, v in measured.jpeg.items()},
        run_test_acc=float(results["test_acc"]),
        recipe=recipe or (f"{origin['recipe']} {origin['budget']}" if origin else "moderncnn train"),
        epochs=int(results.get("epochs") or settings.get("epochs")),
        train_seconds=results.get("train_seconds"),
        hardware=str(results.get("device_name") or results.get("device", "")),
        date=date.today().isoformat(),
        published=published_figure(info.model, info.config.dataset, origin),
        config={k: v for k, v in settings.items() if k not in LOCAL_SETTINGS},
    )


def published_figure(model: str, dataset: str, origin: dict) -> dict:
    """The published test accuracy this network is compared with: the run's recipe's, else a bundled recipe's that
    trains ``model`` on ``dataset``, else the figure the network's source reports (the registry's ``published``);
    ``{}`` when none is known."""
    from moderncnn.registry import get_model_info
    from moderncnn.run.recipes import list_recipes

    candidates = []
    if origin:
        candidates.append((origin.get("published", {}), origin.get("published_columns", []), origin.get("heading", {})))
    for recipe in list_recipes():
        network = recipe.network(model)
        if network is not None and recipe.dataset == dataset:
            candidates.append((network.published, recipe.published_columns, {"source": recipe.source}))
    for published, columns, heading in candidates:
        for column in columns:
            if column.get("ours") == "test_acc" and column.get("key") in published:
                return {
                    "label": column["label"],
                    "value": published[column["key"]],
                    "source": heading.get("source", ""),
                }
    info = get_model_info(model)
    if dataset in info.published:  # no recipe of ours trains it: the figure its source reports
        figure = info.published[dataset]
        return {
            "label": "source's test acc",
            "value": figure["test_acc"],
            "source": f"{info.source}, {figure['where']}",
        }
    return {}
