"""moderncnn: the modern convolutional networks, from LeNet to DenseNet.

>>> import moderncnn as mc
>>> net = mc.create_model("resnet18_d2l", num_classes=10, in_channels=1)
>>> rows = mc.summary(net, (1, 1, 96, 96))
"""

from moderncnn.registry import ModelInfo, create_model, get_model_info, list_families, list_models
from moderncnn.summary import count_flops, count_parameters, summary

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``predict`` pulls in the training engine (Lightning) and torchvision's image I/O; import it on first use so
    # that ``import moderncnn`` stays as light as the registry.
    if name == "predict":
        from moderncnn.deploy.predict import predict

        return predict
    raise AttributeError(f"module 'moderncnn' has no attribute {name!r}")


__all__ = [
    "ModelInfo",
    "count_flops",
    "count_parameters",
    "create_model",
    "get_model_info",
    "list_families",
    "list_models",
    "predict",
    "summary",
]
