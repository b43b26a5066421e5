"""The network a server answers with: a trained run (PyTorch) or an ONNX export (onnxruntime), with its preprocessing.

Both backends read an image exactly as ``moderncnn predict`` does (the run's
:class:`~moderncnn.run.preprocess.Preprocess`: :func:`moderncnn.data.image.read_file` on the bytes held in memory,
then the evaluation transform), so a file gets the same probabilities from the server as from the command line. An
ONNX export carries its preprocessing in the JSON file ``moderncnn export`` writes beside it (``OUT.onnx.json``).
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import functools
import io
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from moderncnn.constants import SERVE_BACKENDS
from moderncnn.data.image import UnreadableImage, read_file
from moderncnn.errors import CheckpointError, UsageError
from moderncnn.run.preprocess import Preprocess
from moderncnn.rundir import RunDir

BACKENDS = SERVE_BACKENDS
# Images decoded at once by one server. Each is full size until it shrinks to a few times the input (up to ~270 MB
# for an RGB file at the 89.5-megapixel limit), so this, not the number of requests, bounds the decoding memory.
DECODE_SLOTS = 2


@dataclass
class ServedModel:
    """A network ready to answer: ``probabilities(batch)`` on preprocessed inputs, and what describes it.

    Attributes:
        name: the registry name of the network (or the export's model name).
        class_names: name of each output.
        in_channels, input_size, mean, std: the preprocessing.
        backend: ``torch`` or ``onnxruntime``.
        source: the run directory, checkpoint or ONNX file served.
        parameters: number of parameters.
        test_accuracy: the run's test accuracy from its ``results.json``, when there is one.
        net: the PyTorch network (``None`` for ONNX): /explain and the filters need it.
    """

    name: str
    class_names: list[str]
    in_channels: int
    input_size: int
    mean: list[float]
    std: list[float]
    backend: str
    source: str
    parameters: int
    test_accuracy: float | None = None
    net: nn.Module | None = field(default=None, repr=False)
    session: object | None = field(default=None, repr=False)
    _explain_net: nn.Module | None = field(default=None, repr=False)
    _explain_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _decoding: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(DECODE_SLOTS), repr=False
    )

    def __post_init__(self):
        self._preprocess = Preprocess.of(self.in_channels, self.input_size, self.mean, self.std)

    @property
    def preprocessing(self) -> dict:
        """What was done to each image, as /predict reports it."""
        return self._preprocess.describe()

    def metadata(self) -> dict:
        """The network, its classes and preprocessing, its size and where it comes from (``GET /metadata``)."""
        return {
            "network": self.name,
            "backend": self.backend,
            "classes": self.class_names,
            "num_classes": len(self.class_names),
            "input_size": self.input_size,
            "input_shape": [self.in_channels, self.input_size, self.input_size],
            "channels": self.in_channels,
            "mean": self.mean,
            "std": self.std,
            "parameters": self.parameters,
            "test_accuracy": self.test_accuracy,
            "source": self.source,
            "explain": self.net is not None,
        }

    def read(self, data: bytes, max_pixels: int | None = None) -> tuple[Tensor, Tensor]:
        """Image bytes as ``(pixels, input)``: uint8 ``(C, H, W)`` as decoded and float ``(C, S, S)`` for the network.

        Raises:
            UnreadableImage: empty, not an image, truncated, or above the pixel limit (refused from its header).
        """
        if not data:
            raise UnreadableImage("the image is empty (0 bytes); send the bytes of a PNG, JPEG or other image file")
        try:
            with self._decoding:
                pixels, _ = read_file(io.BytesIO(data), self.in_channels, max_pixels=max_pixels,
                                      input_size=self.input_size)  # fmt: skip
        finally:
            _return_freed_memory()
        return pixels, self._preprocess(pixels[None])[0]

    def probabilities(self, batch: Tensor) -> Tensor:
        """Class probabilities ``(N, K)`` for preprocessed inputs ``(N, C, S, S)``, as ``predict`` computes them."""
        if self.session is not None:
            logits = self.session.run(None, {self.session.get_inputs()[0].name: batch.numpy()})[0]
            return torch.softmax(torch.from_numpy(logits).float(), dim=1)
        with torch.no_grad():
            return torch.softmax(self.net(batch).float(), dim=1)

    def explain_net(self) -> tuple[nn.Module, threading.Lock]:
        """A copy of the network for attributions, and the lock to hold while using it.

        Grad-CAM hooks a layer while it runs; on a copy those hooks never see the batches the server runs meanwhile.
        """
        if self.net is None:
            raise UsageError("explanations need the network's weights in PyTorch; serve the run, not its ONNX export")
        with self._explain_lock:
            if self._explain_net is None:
                self._explain_net = copy.deepcopy(self.net).eval()
        return self._explain_net, self._explain_lock


def load_model(source: str | Path, backend: str | None = None, checkpoint: str = "best") -> ServedModel:
    """The model to serve from a run directory, a ``.ckpt`` file or an ``.onnx`` export with its JSON.

    Args:
        source: what to serve.
        backend: ``torch`` or ``onnxruntime``; default from ``source`` (an ``.onnx`` file: onnxruntime).
        checkpoint: ``best`` or ``last`` for a run directory.

    Raises:
        UsageError: an unknown backend or one that cannot serve ``source``. CheckpointError: a bad run or export.
    """
    source = Path(source)
    onnx_file = source.suffix.lower() == ".onnx"
    backend = backend or ("onnxruntime" if onnx_file else "torch")
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "onnxruntime":
        if not onnx_file:
            raise UsageError(
                f"the onnxruntime backend serves an .onnx export, not {source}; export the run first with "
                "`moderncnn export RUN --format onnx`, or use --backend torch"
            )
        return _load_onnx(source)
    if onnx_file:
        raise UsageError(f"{source} is an ONNX export; serve it with --backend onnxruntime, or serve its run directory")
    return _load_torch(source, checkpoint)


def _load_torch(source: Path, checkpoint: str) -> ServedModel:
    from moderncnn.run.checkpoint import load_run

    net, info = load_run(source, checkpoint)
    run = RunDir.of_checkpoint(info.checkpoint)
    return ServedModel(
        name=info.model,
        class_names=list(info.class_names),
        in_channels=info.in_channels,
        input_size=info.input_size,
        mean=list(info.mean),
        std=list(info.std),
        backend="torch",
        source=str(source),
        parameters=sum(p.numel() for p in net.parameters()),
        test_accuracy=info.weights.test_acc if info.weights is not None else _test_accuracy(run),
        net=net,
    )


def _load_onnx(path: Path) -> ServedModel:
    import onnx
    import onnxruntime

    meta_file = path.with_name(f"{path.name}.json")
    if not path.is_file():
        raise CheckpointError(f"no ONNX file at {path}")
    if not meta_file.is_file():
        raise CheckpointError(
            f"{path} has no preprocessing file {meta_file.name} beside it; export with `moderncnn export RUN "
            "--format onnx`, which writes both"
        )
    try:
        meta = json.loads(meta_file.read_text())
        pre = meta["preprocessing"]
        channels, (height, width) = int(pre["channels"]), pre["resize"]
        names = list(meta["class_names"])
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{meta_file} is not the preprocessing file of a moderncnn export ({err})") from None
    if height != width:
        raise CheckpointError(f"{meta_file}: the export takes {height}x{width} inputs; only square inputs are served")
    mean, std = pre.get("mean") or [0.0] * channels, pre.get("std") or [1.0] * channels
    options = onnxruntime.SessionOptions()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    _check_sidecar(meta_file, session, channels, int(height), names, mean, std)
    graph = onnx.load(str(path), load_external_data=False).graph
    parameters = sum(int(torch.Size(init.dims).numel()) for init in graph.initializer)
    checkpoint = meta.get("checkpoint")
    run = RunDir.of_checkpoint(checkpoint) if checkpoint else None
    return ServedModel(
        name=str(meta.get("model", path.stem)),
        class_names=names,
        in_channels=channels,
        input_size=int(height),
        mean=[float(m) for m in mean],
        std=[float(s) for s in std],
        backend="onnxruntime",
        source=str(path),
        parameters=parameters,
        test_accuracy=_test_accuracy(run),
        session=session,
    )


def _check_sidecar(meta_file: Path, session, channels: int, size: int, names: list, mean: list, std: list) -> None:
    """The preprocessing file agrees with the model it sits beside: one input of ``(channels, size, size)`` gives
    one probability per class name, and the normalisation has one finite mean and positive std per channel. A
    server that started with a mismatched file would say it is ready and answer every /predict with 500."""

    def refuse(what: str) -> CheckpointError:
        return CheckpointError(
            f"{meta_file} does not match the model beside it: {what}; export the run again with `moderncnn export "
            "RUN --format onnx`, which writes both"
        )

    values = [*mean, *std]
    if len(mean) != channels or len(std) != channels:
        raise refuse(f"{len(mean)} means and {len(std)} stds for {channels} channels")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values) or min(std) <= 0:
        raise refuse(f"mean {mean} and std {std} must be finite numbers, the stds above 0")
    declared = session.get_inputs()[0].shape[1:]
    fixed = [(want, got) for want, got in zip((channels, size, size), declared, strict=False) if isinstance(got, int)]
    if any(want != got for want, got in fixed):
        raise refuse(f"inputs of {channels}x{size}x{size}, but the model takes {'x'.join(map(str, declared))}")
    try:
        outputs = session.run(None, {session.get_inputs()[0].name: np.zeros((1, channels, size, size), np.float32)})
    except Exception as err:  # onnxruntime's errors share no base class
        raise refuse(f"the model does not run on a {channels}x{size}x{size} input ({type(err).__name__})") from None
    if outputs[0].shape != (1, len(names)):
        raise refuse(f"{len(names)} class names for a model with outputs of shape {list(outputs[0].shape[1:])}")


def _test_accuracy(run: RunDir | None) -> float | None:
    if run is None or not run.results.is_file():
        return None
    try:
        value = run.read_results().get("test_acc")
    except Exception:  # a damaged results.json leaves the summary without accuracy; serving goes on
        return None
    return float(value) if isinstance(value, (int, float)) else None


@functools.cache
def _malloc_trim():
    libc = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(libc).malloc_trim if libc else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None


def _return_freed_memory() -> None:
    """Hand the pages a decoded image was freed from back to the system. glibc keeps freed heap memory for reuse
    (a server that decoded ten 81-megapixel images at once held 1.6 GB afterwards); ``malloc_trim`` returns it."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
