"""The weights table: every trained weight we publish, as data in one file (``table.json`` beside this module).

Each entry says what the weight is (network, dataset, the options the network is built with), how to read it (its
file, sha256 and size; a URL when it is not bundled), how to feed it (the preprocessing: input size, channels,
mean/std, class names) and what it scored (test accuracy on the full test split, with flip TTA, on the test split
re-encoded as JPEG), with the run's settings and training facts its model card is written from.
``benchmarks/publish_weights.py`` writes the entries; nothing else does. Like torchvision's ``Weights(url,
transforms, meta)``, the preprocessing travels with the weight, so predict, serve and the rest need nothing else.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from moderncnn.errors import UsageError

HERE = Path(__file__).parent
TABLE = HERE / "table.json"
BUNDLED = HERE / "files"  # the weight files that ship inside the package
CARDS = HERE / "cards"  # the model cards (markdown) and their figures
PREFIX = "weights:"  # how a command that takes a RUN names a weight instead
EXTRA_TABLE_VARIABLE = "MODERNCNN_WEIGHTS_TABLE"


@dataclass(frozen=True)
class WeightsInfo:
    """One published weight: the file, the preprocessing that travels with it, and what it scored.

    Attributes:
        name: ``<network>-<dataset>``, e.g. ``resnet20-cifar10``.
        network: registry name of the network.
        dataset: the dataset it was trained on (its test split is what ``test_acc`` measures).
        num_classes, in_channels, input_size: the network's logits, image channels and square input side.
        mean, std: per-channel normalisation of images scaled to [0, 1].
        class_names: name of each logit's class.
        model_kwargs: options the network is built with (``create_model(network, **model_kwargs)``).
        file: the file's name (``safetensors``); bundled in the package unless ``url`` is set.
        sha256: the file's SHA-256, checked on every load.
        size: the file's size in bytes.
        dtype: the dtype its floating-point tensors are stored in (``float16``, ``bfloat16`` or ``float32``).
        url: where the file is downloaded from (``None``: bundled in the package).
        test_acc, test_acc_tta: accuracy of this file on the full test split, plain and with test-time augmentation.
        tta: the views ``test_acc_tta`` averages (``flip``, or airbench94's ``flip-shift``).
        jpeg_acc: test accuracy on the test split re-encoded as JPEG, by quality (``{"95": ..., "75": ...}``).
        run_test_acc: the test accuracy the training run reported (``results.json``).
        recipe: how it was trained, in a few words (``uva-tutorial5 fast``, ``moderncnn demo``).
        epochs, train_seconds: epochs and training wall time.
        hardware: what it trained on.
        date: when it was published (ISO date).
        published: the published figure it is compared with (``{"label", "value", "source"}``), if any.
        config: the run's settings (``config.yaml`` without local paths).
    """

    name: str
    network: str
    dataset: str
    num_classes: int
    in_channels: int
    input_size: int
    mean: list[float]
    std: list[float]
    class_names: list[str]
    sha256: str
    file: str
    size: int
    dtype: str = "float32"
    model_kwargs: dict = field(default_factory=dict)
    url: str | None = None
    test_acc: float | None = None
    test_acc_tta: float | None = None
    tta: str = "flip"
    jpeg_acc: dict = field(default_factory=dict)
    run_test_acc: float | None = None
    recipe: str = ""
    epochs: int | None = None
    train_seconds: float | None = None
    hardware: str = ""
    date: str = ""
    published: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @property
    def bundled(self) -> bool:
        """Whether the file ships inside the package (else it is downloaded from ``url``)."""
        return self.url is None

    @property
    def card(self) -> Path:
        """The model card (markdown)."""
        return CARDS / f"{self.name}.md"

    @property
    def preprocessing(self) -> dict:
        """What an image needs before the network: ``channels``, ``input_size``, ``mean``, ``std``."""
        return {"channels": self.in_channels, "input_size": self.input_size, "mean": self.mean, "std": self.std}

    def transforms(self):
        """The preprocessing as ``torchvision.transforms.v2`` for one image (a PIL image or a uint8 tensor)."""
        import torch
        from torchvision.transforms import v2

        return v2.Compose(
            [
                v2.ToImage(),
                v2.Grayscale(1) if self.in_channels == 1 else v2.RGB(),
                v2.Resize((self.input_size, self.input_size), antialias=True),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(list(self.mean), list(self.std)),
            ]
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> WeightsInfo:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@functools.cache
def _read_table(path: Path) -> dict[str, WeightsInfo]:
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
        return {name: WeightsInfo.from_dict({"name": name, **entry}) for name, entry in entries.items()}
    except (ValueError, TypeError, AttributeError) as err:
        raise UsageError(f"{path} is not a weights table (a JSON mapping of names to entries): {err}") from None


def table() -> dict[str, WeightsInfo]:
    """Every published weight by name: the package's table, then the entries of ``$MODERNCNN_WEIGHTS_TABLE`` (a
    JSON file of the same form, for weights hosted elsewhere; each of its entries needs a ``url``)."""
    entries = dict(_read_table(TABLE))
    extra = os.environ.get(EXTRA_TABLE_VARIABLE)
    if extra:
        for name, info in _read_table(Path(extra).expanduser()).items():
            if info.url is None:
                raise UsageError(f"{extra}: weight {name!r} has no url; an added table's weights are downloaded")
            entries[name] = info
    return entries


def list_weights(pattern: str | None = None) -> list[str]:
    """Names of the published weights (``<network>-<dataset>``), those containing ``pattern`` when given."""
    return [name for name in table() if pattern is None or pattern in name]


def get_weights_info(name: str) -> WeightsInfo:
    """The table's entry for ``name`` (``resnet20-cifar10``; ``weights:resnet20-cifar10`` is accepted too).

    Raises:
        UsageError: no such weight; the message names the closest ones and how to list them all.
    """
    name = name.removeprefix(PREFIX)
    entries = table()
    if name in entries:
        return entries[name]
    close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    shipped = ", ".join(entries) or "none"
    raise UsageError(f"no published weights {name!r}; {hint}published: {shipped} (`moderncnn weights` lists them)")


def weights_for(network: str, dataset: str) -> WeightsInfo:
    """The weight of ``network`` trained on ``dataset`` (what ``create_model(network, pretrained=dataset)`` loads)."""
    name = f"{network}-{dataset}"
    if name in table():
        return table()[name]
    have = [info.dataset for info in table().values() if info.network == network]
    if have:
        raise UsageError(f"{network} has published weights for {', '.join(have)}, not {dataset!r}")
    raise UsageError(
        f"no published weights for {network}; published: {', '.join(table()) or 'none'} (`moderncnn weights`)"
    )


def weights_name(source) -> str | None:
    """The weight's name when ``source`` spells one (``weights:<network>-<dataset>``), else ``None``."""
    text = str(source)
    return text[len(PREFIX) :] if text.startswith(PREFIX) else None


def write_table(entries: dict[str, WeightsInfo], path: Path = TABLE) -> None:
    """Write ``entries`` as the table (sorted by name; the publishing script's only way to change it)."""
    data = {name: {k: v for k, v in entries[name].to_dict().items() if k != "name"} for name in sorted(entries)}
    path.write_text(json.dumps(data, indent=1) + "\n")
    _read_table.cache_clear()
