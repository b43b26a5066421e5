"""Using a trained run: ``predict`` on image files, ``export`` to ONNX, torch.export, TorchScript or Triton.

Depends on the engine (to rebuild a run's network from its checkpoint) and on ``data`` (to preprocess images
exactly as in evaluation); only the CLI and ``moderncnn.predict`` reach into it.
"""

# ``export`` the function shadows the ``export`` submodule as an attribute of this package; reach the module
# itself with ``importlib.import_module("moderncnn.deploy.export")``.
from moderncnn.deploy.export import FORMATS, ExportError, ExportResult, export, export_module
from moderncnn.deploy.predict import Failure, Prediction, PredictResult, load_run, plot_predictions, predict

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportResult",
    "Failure",
    "PredictResult",
    "Prediction",
    "export",
    "export_module",
    "load_run",
    "plot_predictions",
    "predict",
]
