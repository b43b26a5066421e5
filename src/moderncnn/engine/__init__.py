"""Training: a Lightning module around any registered network, a data module, and ``train(config)``.

Knows nothing of a particular family: networks come from the registry by name, data from ``moderncnn.data``.
"""

from moderncnn.engine.config import TrainConfig, default_settings, make_config
from moderncnn.engine.train import RunResult, load_checkpoint, train

__all__ = ["RunResult", "TrainConfig", "default_settings", "load_checkpoint", "make_config", "train"]
