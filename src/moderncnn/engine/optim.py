"""Optimisers and learning-rate schedules of a run, built from its settings.

``muon`` trains the convolution filters with Muon (K. Jordan et al. 2024, ``torch.optim.Muon``: momentum, then the
update orthogonalised by a Newton-Schulz iteration) and every other trainable parameter (biases, normalisation
shifts, the classifier) with SGD, as airbench94 does. Muon works on matrices, so each filter bank ``(out, in, kh,
kw)`` is handed to it as its ``(out, in * kh * kw)`` matrix.

torch's Muon orthogonalises in bf16. A CPU without native bf16 (no AVX-512 BF16 or AMX) emulates it at about 0.3
GFLOP/s, a hundredth of its fp32 rate: 2.7 s per airbench94 step on a 2-core AVX2 CPU (benchmarks/RESULTS.md).
There the same algorithm (torch's coefficients, momentum, rate adjustment and optimiser state) runs in fp32 instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
MUON_NS_STEPS = 3  # airbench94's Newton-Schulz steps (torch's default is 5): enough for small batches' updates


def parameter_groups(
    net: nn.Module,
    weight_decay: float,
    norm_weight_decay: float | None,
    classifier: str | None = None,
    classifier_lr: float | None = None,
    exclude: set[int] | frozenset[int] = frozenset(),
) -> list[dict]:
    """The trainable parameters (those not in ``exclude``, by ``id``) as optimiser groups.

    Normalisation layers' parameters and every bias get ``norm_weight_decay`` (when given; torchvision's
    classification reference recipe sets it to 0), the rest ``weight_decay``; with ``classifier_lr``, the
    parameters of the module ``classifier`` (a dotted path) form groups of their own with that rate. Empty groups are
    left out.
    """
    head = set()
    if classifier_lr is not None and classifier:
        head = {id(p) for p in net.get_submodule(classifier).parameters()}
    split_decay = norm_weight_decay is not None and norm_weight_decay != weight_decay
    buckets: dict[tuple[bool, bool], list[Tensor]] = {}
    for module in net.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in exclude:
                continue
            exempt = split_decay and (isinstance(module, NORMS) or name == "bias")
            buckets.setdefault((id(p) in head, exempt), []).append(p)
    groups = []
    for (in_head, exempt), params in buckets.items():
        group = {"params": params, "weight_decay": norm_weight_decay if exempt else weight_decay}
        if in_head:
            group["lr"] = classifier_lr
        groups.append(group)
    return groups


def muon_parameters(net: nn.Module) -> list[nn.Parameter]:
    """What Muon trains: every trainable convolution filter bank (4-D weight). Biases, normalisation layers, linear
    layers (the classifier) and frozen filters (airbench94's whitening) are left to the other optimiser."""
    return [m.weight for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd) and m.weight.requires_grad]


class MuonWithSGD(torch.optim.Optimizer):
    """Muon for the convolution filters and SGD for the rest, as one optimiser (Lightning steps one).

    ``param_groups`` lists SGD's groups, then Muon's, so a learning-rate schedule scales both; Muon's group holds
    the filters' matrix views (see the module docstring). With ``normalize`` each filter bank is rescaled to norm
    ``sqrt(out_channels)`` before its step (airbench94): filters followed by BatchNorm compute the same function at
    any scale, and a fixed scale keeps their effective rate the one the schedule sets.

    Args:
        filters: the filter banks for Muon (:func:`muon_parameters`).
        groups: the other parameters' groups (:func:`parameter_groups`), for SGD.
        lr, momentum, nesterov: SGD's.
        muon_lr, muon_momentum: Muon's (Nesterov momentum, no weight decay, as airbench94).
        normalize: rescale the filters before each step.
        fp32: orthogonalise in fp32 rather than with torch's Muon in bf16 (default: where bf16 is not native, see
            the module docstring).
    """

    def __init__(
        self,
        filters: list[nn.Parameter],
        groups: list[dict],
        *,
        lr: float,
        momentum: float,
        nesterov: bool,
        muon_lr: float,
        muon_momentum: float,
        normalize: bool = True,
        fp32: bool | None = None,
    ):
        if not hasattr(torch.optim, "Muon"):
            from moderncnn.errors import ConfigError

            raise ConfigError(
                f"optimizer muon needs torch.optim.Muon (torch 2.9 or newer); this is {torch.__version__}"
            )
        self.filters = list(filters)
        self.normalize = normalize
        self.fp32 = _emulates_bf16(self.filters) if fp32 is None else fp32
        # Contiguous (out, in*kh*kw) copies that Muon steps; the filters themselves may be channels-last.
        self.matrices = [nn.Parameter(p.detach().reshape(len(p), -1).clone()) for p in self.filters]
        self.sgd = torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
        self.muon = torch.optim.Muon(
            self.matrices or [nn.Parameter(torch.zeros(1, 1))],
            lr=muon_lr,
            momentum=muon_momentum,
            nesterov=True,
            weight_decay=0.0,
            ns_steps=MUON_NS_STEPS,
        )
        # The base class's bookkeeping (hooks, state) over all parameters; the groups are then the two optimisers'.
        super().__init__([p for g in self.sgd.param_groups for p in g["params"]] + self.filters, {"lr": lr})
        self.param_groups = self.sgd.param_groups + self.muon.param_groups
        self.defaults = {**self.sgd.defaults, "lr": lr}

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for p, matrix in zip(self.filters, self.matrices, strict=True):
            if p.grad is None:
                matrix.grad = None
                continue
            if self.normalize:
                p.mul_(len(p) ** 0.5 / p.float().norm().clamp_min(1e-12))
            matrix.copy_(p.reshape(len(p), -1))
            matrix.grad = p.grad.reshape(len(p), -1)
        if self.fp32:
            self._muon_step_fp32()
        else:
            self.muon.step()
        for p, matrix in zip(self.filters, self.matrices, strict=True):
            if p.grad is not None:
                p.copy_(matrix.view(p.shape))
        self.sgd.step()
        return loss

    def _muon_step_fp32(self) -> None:
        """torch's Muon step (Nesterov momentum, Newton-Schulz orthogonalisation with its coefficients, the
        "original" rate adjustment), with the iteration in fp32; the momentum buffers are kept where torch keeps
        them, so either path continues the other's checkpoint."""
        for group in self.muon.param_groups:
            a, b, c = group["ns_coefficients"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                buffer = self.muon.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buffer.mul_(group["momentum"]).add_(p.grad)
                update = p.grad.add(buffer, alpha=group["momentum"]) if group["nesterov"] else buffer
                x = update.float()
                tall = x.size(0) > x.size(1)
                x = x.T if tall else x
                x = x / x.norm().clamp(min=group["eps"])
                for _ in range(group["ns_steps"]):
                    gram = x @ x.T
                    x = a * x + (b * gram + c * gram @ gram) @ x
                x = x.T if tall else x
                rows, cols = p.shape
                p.add_(x.to(p.dtype), alpha=-group["lr"] * max(1.0, rows / cols) ** 0.5)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.sgd.zero_grad(set_to_none)
        self.muon.zero_grad(set_to_none)
        for p in self.filters:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def state_dict(self) -> dict:
        return {"sgd": self.sgd.state_dict(), "muon": self.muon.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.sgd.load_state_dict(state_dict["sgd"])
        self.muon.load_state_dict(state_dict["muon"])
        self.param_groups = self.sgd.param_groups + self.muon.param_groups


def _emulates_bf16(params: list[Tensor]) -> bool:
    """True on a CPU that does not compute bf16 natively (where torch's bf16 Newton-Schulz would crawl)."""
    if not params or params[0].device.type != "cpu":
        return False
    from moderncnn.run.speed import cpu_bf16_feature

    return not cpu_bf16_feature()


@dataclass(frozen=True)
class OptimizerSettings:
    """What the optimiser and the schedule take of a run's settings (``TrainConfig``'s fields of these names)."""

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    norm_weight_decay: float | None = None
    classifier_lr: float | None = None
    muon_lr: float = 0.24
    muon_momentum: float = 0.6
    schedule: str = "none"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_epochs: float = 0
    epochs: int = 1

    @classmethod
    def of(cls, settings) -> OptimizerSettings:
        """These fields of ``settings`` (a ``TrainConfig``)."""
        values = {f.name: getattr(settings, f.name) for f in fields(cls)}
        return cls(**{**values, "milestones": tuple(values["milestones"])})


def build_optimizer(net: nn.Module, cfg, classifier: str | None) -> torch.optim.Optimizer:
    """The optimiser ``cfg`` names (an :class:`OptimizerSettings`, or a ``TrainConfig``), over ``net``'s trainable
    parameters."""
    filters = muon_parameters(net) if cfg.optimizer == "muon" else []
    groups = parameter_groups(
        net,
        cfg.weight_decay,
        cfg.norm_weight_decay,
        classifier=classifier,
        classifier_lr=cfg.classifier_lr,
        exclude={id(p) for p in filters},
    )
    if cfg.optimizer == "muon":
        return MuonWithSGD(
            filters,
            groups,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            muon_lr=cfg.muon_lr,
            muon_momentum=cfg.muon_momentum,
        )
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_factor(schedule: str, steps_per_epoch: int, epochs: int, warmup_epochs: float, milestones, gamma: float):
    """The per-step multiplier of every group's rate: linear warm-up, then ``schedule`` by (fractional) epoch:
    ``none`` (constant), ``multistep`` (times ``gamma`` at each milestone), ``cosine`` (half a cosine to 0) or
    ``linear`` (a straight line to 0 at the last step, as airbench94)."""
    warmup = warmup_epochs * steps_per_epoch
    total = steps_per_epoch * epochs

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "multistep":
            return gamma ** sum(step / steps_per_epoch >= m for m in milestones)
        progress = (step - warmup) / max(1, total - warmup)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if schedule == "linear":
            return max(0.0, 1 - progress)
        return 1.0

    return factor
