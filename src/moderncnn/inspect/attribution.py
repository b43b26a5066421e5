"""Which pixels a network's decision rests on: Grad-CAM, Grad-CAM++, saliency and integrated gradients.

The methods come from Captum (``LayerGradCam``, ``Saliency``, ``IntegratedGradients``). Captum has no Grad-CAM++;
it is computed here from the same layer gradients and activations Captum's ``LayerGradCam`` uses
(``captum._utils.gradient.compute_layer_gradients_and_eval``), with the weights of Chattopadhyay et al. 2018
(eq. 19, for the exponential of the class score, as pytorch-grad-cam computes them).

Each method gives one map per image at the network's input size, "evidence for the target class":

- ``gradcam``, ``gradcam++``: the class-weighted activations of a layer (default: the last convolutional stage,
  :func:`~moderncnn.inspect.common.default_layer`), ReLU'd, upsampled bilinearly;
- ``saliency``: the largest absolute gradient of the class score over the input channels (Simonyan et al. 2014);
- ``integrated-gradients``: the attributions summed over the input channels (signed; Sundararajan et al. 2017),
  from a baseline of zeros, i.e. the training data's mean colour after normalisation. Together they add up to the
  score's difference from the baseline's, up to the convergence delta reported with them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from moderncnn.errors import UsageError
from moderncnn.inspect.common import default_layer, find_layer

METHODS = ("gradcam", "gradcam++", "saliency", "integrated-gradients")
IG_STEPS = 50  # Captum's default number of steps along the path


@dataclass
class Attribution:
    """Maps ``(N, S, S)`` float32 for a batch ``(N, C, S, S)``, and what they explain.

    Attributes:
        maps: one map per image (see the module docstring for each method's values).
        targets: the class each map explains.
        probs: the network's class probabilities ``(N, K)``.
        method: one of :data:`METHODS`.
        layer: the layer of a CAM method, else ``None``.
        delta: integrated gradients' convergence delta per image (``None`` for the other methods).
    """

    maps: Tensor
    targets: list[int]
    probs: Tensor
    method: str
    layer: str | None = None
    delta: Tensor | None = None


def _gradcam_plus_plus(net: nn.Module, layer: nn.Module, x: Tensor, targets: Tensor) -> Tensor:
    from captum._utils.gradient import compute_layer_gradients_and_eval

    grads, acts = compute_layer_gradients_and_eval(net, layer, x, targets)
    grads, acts = grads[0], acts[0]
    # With the exponential of the score, the second and third derivatives are powers of the first (eq. 19).
    g2, g3 = grads.pow(2), grads.pow(3)
    denominator = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(grads != 0, g2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator)), 0)
    weights = (alpha * F.relu(grads)).sum(dim=(2, 3), keepdim=True)
    return F.relu((weights * acts).sum(dim=1, keepdim=True))


def attribute(
    net: nn.Module,
    x: Tensor,
    *,
    method: str = "gradcam",
    target: int | list[int] | None = None,
    layer: str | None = None,
    ig_steps: int = IG_STEPS,
) -> Attribution:
    """Attribution maps for a batch of network inputs (already preprocessed).

    Args:
        net: the network, in evaluation mode.
        x: inputs ``(N, C, S, S)``.
        method: one of :data:`METHODS`.
        target: the class to explain, one for all images or one per image (default: each image's prediction).
        layer: the layer of ``gradcam``/``gradcam++`` (dotted name; default :func:`default_layer`).
        ig_steps: steps along the path of integrated gradients.

    Raises:
        UsageError: an unknown method, layer or class index.
    """
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency

    if method not in METHODS:
        raise UsageError(f"unknown attribution method {method!r}; valid: {', '.join(METHODS)}")
    if net.training:
        raise UsageError("the network is in training mode; call net.eval() first (BatchNorm and dropout differ)")
    with torch.no_grad():
        probs = torch.softmax(net(x).float(), dim=1)
    num_classes = probs.shape[1]
    if target is None:
        targets = probs.argmax(dim=1)
    else:
        targets = torch.as_tensor([target] * len(x) if isinstance(target, int) else list(target))
        if len(targets) != len(x) or not ((targets >= 0) & (targets < num_classes)).all():
            raise UsageError(f"targets must be class indices in [0, {num_classes}), one per image; got {target}")
    targets = targets.to(x.device)
    size = tuple(x.shape[2:])
    delta, layer_name = None, None
    with torch.enable_grad():
        if method in ("gradcam", "gradcam++"):
            layer_name = layer or default_layer(net)
            module = find_layer(net, layer_name)
            if method == "gradcam":
                cams = LayerGradCam(net, module).attribute(x, target=targets, relu_attributions=True)
            else:
                cams = _gradcam_plus_plus(net, module, x, targets)
            if cams.dim() != 4:
                raise UsageError(
                    f"layer {layer_name} outputs {tuple(cams.shape)}, not maps; choose a convolutional one"
                )
            if cams.shape[2:].numel() == 1:
                warnings.warn(
                    f"layer {layer_name} has 1x1 maps at this input size, so its {method} map is uniform; choose an "
                    "earlier layer with --layer, or give the network larger images",
                    stacklevel=2,
                )
            maps = LayerAttribution.interpolate(cams, size, interpolate_mode="bilinear")[:, 0]
        elif method == "saliency":
            maps = Saliency(net).attribute(x.clone().requires_grad_(), target=targets, abs=True).amax(dim=1)
        else:
            attributions, delta = IntegratedGradients(net).attribute(
                x, baselines=torch.zeros_like(x), target=targets, n_steps=ig_steps, return_convergence_delta=True
            )
            maps = attributions.sum(dim=1)
    return Attribution(maps.detach().float(), targets.tolist(), probs, method, layer_name, delta)
