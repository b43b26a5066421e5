"""``GraphLogger``: the network's computation graph in TensorBoard's Graphs tab, as the UvA tutorial logs it.

When fit starts, rank 0 traces the network once with an example input of the training size (a batch of one
image of zeros) and writes the graph to the run's TensorBoard event file. The trace runs in evaluation mode and
leaves the random state alone, so BatchNorm statistics and the seeded run are exactly as without it; a network
that cannot be traced costs one warning line, never the run.
"""

from __future__ import annotations

import warnings

import lightning as L
import torch


class GraphLogger(L.Callback):
    """Log ``pl_module.net``'s graph to every TensorBoard logger of the Trainer when fit starts.

    Args:
        input_shape: ``(C, H, W)`` of the example input; default the module's hyper-parameters ``in_channels`` and
            ``input_size`` (what ``ImageClassifier`` saves).
    """

    def __init__(self, input_shape: tuple[int, int, int] | None = None):
        self.input_shape = input_shape

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from lightning.pytorch.loggers import TensorBoardLogger

        writers = [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not writers:
            return
        net = getattr(pl_module, "net", pl_module)
        shape = self.input_shape or (
            pl_module.hparams["in_channels"],
            pl_module.hparams["input_size"],
            pl_module.hparams["input_size"],
        )
        example = torch.zeros(1, *shape, device=pl_module.device)
        was_training = net.training
        net.eval()  # a trace in training mode would move BatchNorm's running statistics and draw dropout masks
        try:
            with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on Python values in forward()
                for writer in writers:
                    writer.add_graph(net, example)
                    writer.flush()
        except Exception as err:  # noqa: BLE001 - a graph is a nicety; the run goes on without it
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            warnings.warn(
                f"no TensorBoard graph for this network: tracing it failed ({type(err).__name__}: {first[:200]})",
                stacklevel=1,
            )
        finally:
            net.train(was_training)
