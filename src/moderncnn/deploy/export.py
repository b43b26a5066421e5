"""Export a network to ONNX, torch.export (``.pt2``), TorchScript or a Triton model repository, verified.

Every export is loaded back by the runtime that will serve it (onnxruntime, ``torch.export.load``,
``torch.jit.load``) and compared with the eager network in eval mode on random batches of 1 and 3 images. The
batch axis is dynamic in every format and the example batch has 2 images, so a graph that baked in its example's
batch size fails here rather than in a server. An export that differs by more than ``tolerance`` raises
:class:`ExportError` and leaves nothing behind: files are written in a staging folder beside ``out`` (beside the
repository for Triton, never inside it) and moved into place only once verified; a killed export's staging folder
is removed by the next export (:mod:`moderncnn.deploy.staging`). An unwritable, missing or full location is
reported before any work, in one line naming it (:class:`~moderncnn.errors.OutputError`).

Beside each export, ``<out>.json`` (in a Triton model folder, ``preprocessing.json``) records what a server must do
to an image first (channels, input size, scaling, mean and std), the class names and the measured difference.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from moderncnn.deploy import staging
from moderncnn.errors import ExportError, OutputError, UsageError
from moderncnn.files import ensure_writable, make_folder, output_error
from moderncnn.run.checkpoint import load_run
from moderncnn.rundir import RunDir

FORMATS = ("onnx", "pt2", "torchscript", "triton")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt"}
INPUT_NAME, OUTPUT_NAME = "images", "logits"
TOLERANCE = 1e-4
CHECK_BATCHES = (1, 3)
# torch.export specialises a dimension whose example size is 0 or 1 to that constant; 2 keeps the batch symbolic.
EXAMPLE_BATCH = 2


@dataclass
class ExportResult:
    """A verified export.

    Attributes:
        format: ``onnx``, ``pt2``, ``torchscript`` or ``triton``.
        path: the model file; for ``triton``, the model folder ``<out>/<name>``.
        metadata: the JSON file with the preprocessing and class names.
        max_abs_diff: the largest difference between the export's logits and the eager network's.
        opset: the ONNX operator set (``onnx`` and ``triton`` only).
    """

    format: str
    path: Path
    metadata: Path
    max_abs_diff: float
    opset: int | None = None

    def __str__(self) -> str:
        opset = f", opset {self.opset}" if self.opset is not None else ""
        batches = " and ".join(map(str, CHECK_BATCHES))
        return (
            f"wrote {self.path} ({self.format}{opset}): max abs difference from the eager network "
            f"{self.max_abs_diff:.2e} on batches of {batches}"
        )

    def to_dict(self) -> dict:
        return {**self.__dict__, "path": str(self.path), "metadata": str(self.metadata)}


def export(
    run_or_ckpt: str | Path,
    format: str,
    out: str | Path | None = None,
    *,
    checkpoint: str = "best",
    opset: int | None = None,
    name: str | None = None,
    max_batch_size: int = 64,
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Export a trained run's network, with its preprocessing and class names beside it.

    Args:
        run_or_ckpt: a run directory (its ``checkpoints/<checkpoint>.ckpt`` is used) or a ``.ckpt`` file.
        format: ``onnx``, ``pt2`` (``torch.export``), ``torchscript`` (deprecated upstream in favour of
            ``torch.export``) or ``triton`` (a Triton model repository serving the ONNX model with onnxruntime).
        out: the file to write; for ``triton``, the repository folder (the model goes in ``<out>/<name>``).
            Default: ``<run>/export/<name>.<ext>``, or ``<run>/triton`` for ``triton``.
        checkpoint: ``best`` or ``last`` when ``run_or_ckpt`` is a run directory.
        opset: ONNX operator set; default: the exporter's own (onnxruntime must support it, and the check fails
            otherwise).
        name: the model's name in a Triton repository (default: the run's network name).
        max_batch_size: Triton's ``max_batch_size``.
        tolerance: the largest absolute difference from the eager network's logits that is accepted.

    Raises:
        ExportError: (a ``ValueError``) the export failed or differs from the network by more than ``tolerance``.
        ValueError: a bad run, checkpoint or option.
    """
    _check_format(format)
    net, run = load_run(run_or_ckpt, checkpoint)
    model, ckpt = run.model, run.checkpoint
    name = name or model
    if out is None:
        owner = RunDir.of_checkpoint(ckpt)
        run_dir = owner.path if owner is not None else ckpt.parent
        out = run_dir / "triton" if format == "triton" else run_dir / "export" / f"{name}{SUFFIXES[format]}"
    return export_module(
        net,
        format,
        out,
        input_shape=run.input_shape,
        class_names=run.class_names,
        mean=run.mean,
        std=run.std,
        name=name,
        opset=opset,
        max_batch_size=max_batch_size,
        tolerance=tolerance,
        info={"model": model, "checkpoint": str(ckpt)},
    )


def export_module(
    net: nn.Module,
    format: str,
    out: str | Path,
    *,
    input_shape: Sequence[int],
    class_names: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    name: str = "model",
    opset: int | None = None,
    max_batch_size: int = 64,
    tolerance: float = TOLERANCE,
    info: dict | None = None,
) -> ExportResult:
    """Export any network taking ``(N, *input_shape)`` images, e.g. an untrained one; see :func:`export`.

    The network is copied to the CPU in eval mode; the module passed in is left as it was.

    Args:
        input_shape: ``(C, H, W)`` of one image.
        class_names: names of the outputs (default ``"0"``, ``"1"``, ...), for Triton's labels and the JSON.
        mean, std: the normalisation a server must apply to pixels scaled to [0, 1], recorded in the JSON.
        info: more entries for the JSON (e.g. the run's network name and checkpoint).
    """
    _check_format(format)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in input_shape):
        raise UsageError(f"input_shape must be (C, H, W) with positive integers, got {input_shape}")
    if not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise UsageError(f"max_batch_size must be a positive integer, got {max_batch_size!r}")
    if format == "triton" and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UsageError(f"a Triton model name uses letters, digits, '_', '.' and '-' only; got {name!r}")
    out = Path(out)
    final = out / name if format == "triton" else out
    if format != "triton" and final.is_dir():
        raise UsageError(f"{out} is a directory; give the file to write, e.g. {out / ('model' + SUFFIXES[format])}")
    if format == "triton" and final.exists() and not (final / "config.pbtxt").is_file():
        raise UsageError(f"{final} exists and is not a Triton model folder; remove it or choose another name")
    # The model file is about the size of its weights; the check comes before any work.
    size = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    ensure_writable(final, folder=format == "triton", need_bytes=size + (1 << 20))
    if format != "triton":  # the JSON beside it: `--out RUN/results` must not write RUN/results.json
        ensure_writable(final.with_name(f"{final.name}.json"))
    net = copy.deepcopy(net).cpu().eval()
    example = torch.randn(EXAMPLE_BATCH, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        num_classes = net(example).shape[1]
    class_names = [str(i) for i in range(num_classes)] if class_names is None else list(class_names)
    if len(class_names) != num_classes:
        raise UsageError(f"{len(class_names)} class names for a network with {num_classes} outputs")

    # Staging beside the output, on its file system (moving into place is a rename); for Triton beside the
    # repository, not in it, where a server would try to load it as a model; the system's temporary folder when
    # the repository's parent cannot be written (a mount point such as /models).
    places = [out.parent, Path(tempfile.gettempdir())] if format == "triton" else [final.parent]
    created = [p for p in (final.parent, *final.parent.parents) if not p.exists()]  # deepest first: removed on failure
    try:
        make_folder(final.parent)
        for folder in {*places, final.parent}:  # final.parent: where earlier versions staged, inside a repository
            staging.remove_abandoned(folder)
        tmp = staging.make(places)
    except OSError as err:
        _remove_created(created)
        raise err if isinstance(err, OutputError) else output_error(final, err) from None
    done = False
    try:
        if format == "triton":
            staged = tmp / name
            model_file = _stage_triton(net, example, staged, name, class_names, max_batch_size, opset)
            metadata_file = staged / "preprocessing.json"
        else:
            staged = model_file = tmp / final.name
            WRITERS[format](net, example, model_file, opset)
            metadata_file = tmp / f"{final.name}.json"

        diff = max_abs_diff(net, _load_exported(format, model_file), input_shape)
        if not diff <= tolerance:  # also catches NaN
            rounding = float32_error(net, input_shape)
            raise ExportError(
                f"the {format} export differs from the eager network by {diff:.3g} (max abs difference on random "
                f"batches of {' and '.join(map(str, CHECK_BATCHES))}; tolerance {tolerance:g}); nothing was written. "
                f"On the same inputs the network's own float32 logits differ from float64 ones by {rounding:.3g}: "
                "where that is as large, the export is as exact as the network and a larger tolerance is safe"
            )
        opset_used = _onnx_opset(model_file) if format in ("onnx", "triton") else None
        meta = _metadata(format, input_shape, class_names, mean, std, diff, tolerance, opset_used, info)
        metadata_file.write_text(json.dumps(meta, indent=2) + "\n")

        if format == "triton":
            if final.exists():  # an earlier export of this model (checked above): replaced whole
                shutil.rmtree(final)
            staging.move(staged, final)
            metadata = final / "preprocessing.json"
        else:
            metadata = final.with_name(f"{final.name}.json")
            os.replace(model_file, final)
            os.replace(metadata_file, metadata)
        done = True
    except OutputError:
        raise
    except OSError as err:  # a full disk mid-way, or a location that changed since the check
        raise output_error(final, err) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            _remove_created(created)
    return ExportResult(format, final, metadata, diff, opset_used)


def _remove_created(created: list[Path]) -> None:
    """Remove the folders made for an export that failed (deepest first): leave the tree as it was."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:  # something else was put there meanwhile
            break


def _stage_triton(
    net: nn.Module,
    example: Tensor,
    folder: Path,
    name: str,
    class_names: list[str],
    max_batch_size: int,
    opset: int | None,
) -> Path:
    """Write a Triton model folder (``1/model.onnx``, ``config.pbtxt``, ``labels.txt``); return the ONNX file."""
    model_file = folder / "1" / "model.onnx"
    model_file.parent.mkdir(parents=True)
    _write_onnx(net, example, model_file, opset)
    (folder / "config.pbtxt").write_text(triton_config(name, example.shape[1:], len(class_names), max_batch_size))
    (folder / "labels.txt").write_text("".join(f"{c}\n" for c in class_names))
    return model_file


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")


def _batch_dim() -> torch.export.Dim:
    return torch.export.Dim("batch", min=1)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def _write_onnx(net: nn.Module, example: Tensor, path: Path, opset: int | None) -> None:
    # The torch.export-based exporter (the default since torch 2.9; the TorchScript-based one is deprecated) works
    # for every family here and needs onnxscript. One self-contained file (external_data=False): ONNX's 2 GB limit
    # is far above our largest network (VGG-19, 0.56 GB), and a single file can be staged and moved into place.
    for module in ("onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            raise ExportError(f"ONNX export needs {module}: pip install {module}") from None
    try:
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamo=True,
            dynamic_shapes=({0: _batch_dim()},),
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    except OSError:  # writing failed, not exporting: reported as such by export_module
        raise
    except Exception as err:
        raise ExportError(f"ONNX export failed: {_first_line(err)}") from err


def _write_pt2(net: nn.Module, example: Tensor, path: Path, opset: int | None = None) -> None:
    try:
        program = torch.export.export(net, (example,), dynamic_shapes=({0: _batch_dim()},))
    except Exception as err:
        raise ExportError(f"torch.export failed: {_first_line(err)}") from err
    _save_via_buffer(lambda f: torch.export.save(program, f), path)


def _write_torchscript(net: nn.Module, example: Tensor, path: Path, opset: int | None = None) -> None:
    jit = getattr(torch, "jit", None)
    if jit is None or not hasattr(jit, "trace"):
        raise ExportError(f"torch {torch.__version__} has no TorchScript (torch.jit); export to pt2 or onnx instead")
    # Tracing, not scripting: the registry's input check is a Python hook that TorchScript cannot compile, and no
    # network here branches on its data. The trace warns about those Python-level shape checks and that TorchScript
    # is deprecated; the check below runs the trace at batch sizes other than the example's, which settles both.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated")
        try:
            traced = jit.trace(net, example, check_trace=False)
        except Exception as err:
            raise ExportError(f"TorchScript tracing failed: {_first_line(err)}") from err
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated")  # said in the format's help
        _save_via_buffer(lambda f: jit.save(traced, f), path)


def _save_via_buffer(save: Callable[[io.BytesIO], None], path: Path) -> None:
    """``save`` into memory, then write the bytes from Python: torch's C++ writers abort the whole process when a
    disk fills up under them (a failed write in a destructor), where a Python write raises a plain ``OSError``."""
    buffer = io.BytesIO()
    save(buffer)
    path.write_bytes(buffer.getbuffer())


WRITERS: dict[str, Callable[[nn.Module, Tensor, Path, int | None], None]] = {
    "onnx": _write_onnx,
    "pt2": _write_pt2,
    "torchscript": _write_torchscript,
}


def _load_exported(format: str, path: Path) -> Callable[[Tensor], Tensor]:
    """The export at ``path``, loaded by the runtime that serves it, as a function of a CPU batch."""
    if format in ("onnx", "triton"):
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
        if names != ([INPUT_NAME], [OUTPUT_NAME]):
            raise ExportError(f"the ONNX model's inputs and outputs are {names}, not [{INPUT_NAME}], [{OUTPUT_NAME}]")
        return lambda x: torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
    if format == "pt2":
        return torch.export.load(str(path)).module()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated")
        return torch.jit.load(str(path))


def _check_batches(input_shape: Sequence[int]) -> list[Tensor]:
    generator = torch.Generator().manual_seed(1)  # not the example's seed: inputs the export has not seen
    return [torch.randn(n, *input_shape, generator=generator) for n in CHECK_BATCHES]


def max_abs_diff(net: nn.Module, exported: Callable[[Tensor], Tensor], input_shape: Sequence[int]) -> float:
    """The largest absolute difference between ``exported`` and ``net`` on random batches of 1 and 3 images."""
    diffs = []
    with torch.no_grad():
        for x in _check_batches(input_shape):
            expected, got = net(x), exported(x)
            if tuple(got.shape) != tuple(expected.shape):
                raise ExportError(
                    f"the export returns shape {tuple(got.shape)} for a batch of {len(x)}; "
                    f"the network returns {tuple(expected.shape)}"
                )
            diffs.append((got.float() - expected.float()).abs().max())
    return torch.stack(diffs).max().item()  # NaN, if any, propagates and fails the tolerance check


def float32_error(net: nn.Module, input_shape: Sequence[int]) -> float:
    """How far the network's own float32 logits are from float64 ones, on the inputs :func:`max_abs_diff` uses.

    An export computes in float32 with other kernels and another order of summation, so it cannot agree with the
    eager network much more closely than the network agrees with exact arithmetic. In a deep, badly conditioned
    network (ResNet-152 with BatchNorm statistics from a few batches, or an untrained one whose logits reach 1e4)
    that alone exceeds 1e-4.
    """
    exact = copy.deepcopy(net).cpu().double()
    return max_abs_diff(net, lambda x: exact(x.double()), input_shape)


def _onnx_opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)


def triton_config(name: str, input_shape: Sequence[int], num_classes: int, max_batch_size: int) -> str:
    """``config.pbtxt`` for the ONNX model served by Triton's onnxruntime backend (batch axis left to Triton)."""
    dims = ", ".join(map(str, input_shape))
    return f"""name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [
  {{
    name: "{INPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {dims} ]
  }}
]
output [
  {{
    name: "{OUTPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {num_classes} ]
    label_filename: "labels.txt"
  }}
]
dynamic_batching {{ }}
"""


def _metadata(
    format: str,
    input_shape: tuple[int, ...],
    class_names: list[str],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    diff: float,
    tolerance: float,
    opset: int | None,
    info: dict | None,
) -> dict:
    from moderncnn import __version__

    channels, height, width = input_shape
    return {
        **(info or {}),
        "format": format,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", channels, height, width]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(class_names)], "softmax": False},
        # What moderncnn.predict does to an image file before the network sees it.
        "preprocessing": {
            "channels": channels,
            "color": "RGB" if channels == 3 else "grey (PIL 'L': ITU-R 601-2 luma)",
            "scale": "pixel values to [0, 1] by their bit depth: 8-bit / 255, 16-bit / 65535 (float images: as is)",
            "mean": None if mean is None else list(mean),
            "std": None if std is None else list(std),
            "normalize": "(scaled pixel - mean) / std per channel",
            "resize": [height, width],
            "interpolation": "bilinear, antialiased, whole image (no crop)",
        },
        "class_names": class_names,
        "verification": {"max_abs_diff": diff, "tolerance": tolerance, "batch_sizes": list(CHECK_BATCHES)},
        "opset": opset,
        "moderncnn_version": __version__,
    }
