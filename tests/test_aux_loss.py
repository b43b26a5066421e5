"""Auxiliary classifiers (GoogLeNet's, Inception-v3's) learn in training and stay out of evaluation."""

import warnings

import pytest
import torch
from torch import nn

import moderncnn as mc
from moderncnn.engine import make_config
from moderncnn.engine.module import ImageClassifier


def classifier(name: str, size: int, **model_kwargs) -> ImageClassifier:
    config = make_config(name, dataset="synthetic", model_kwargs=model_kwargs)
    return ImageClassifier(config.to_dict(), 4, 3, list("abcd"), [0.5] * 3, [0.5] * 3, size)


def training_step(module: ImageClassifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # self.log without a Trainer: Lightning warns and logs nothing
        warnings.simplefilter("ignore")
        return module.training_step((x, y), 0)


def test_registry_weights_come_from_the_papers():
    assert mc.get_model_info("googlenet").aux_loss_weight == 0.3  # Szegedy et al. 2015, section 5
    assert mc.get_model_info("inception_v3").aux_loss_weight == 0.4  # TF-slim's train_image_classifier.py
    assert all(
        mc.get_model_info(n).aux_loss_weight == 0 for n in mc.list_models() if n not in ("googlenet", "inception_v3")
    )


def test_one_training_step_trains_googlenets_auxiliary_heads():
    module = classifier("googlenet", 32, aux_logits=True).train()
    heads = {k: p.detach().clone() for k, p in module.net.named_parameters() if k.startswith(("aux1.", "aux2."))}
    assert len(heads) == 2 * 7  # per head: conv weight, BatchNorm weight and bias, fc1 and fc2 weight and bias
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    loss = training_step(module, x, y)
    loss.backward()
    torch.optim.SGD(module.parameters(), lr=0.1).step()
    unchanged = [k for k, p in module.net.named_parameters() if k in heads and torch.equal(p, heads[k])]
    assert not unchanged, f"auxiliary parameters that did not train: {unchanged}"


def test_training_loss_is_main_plus_weighted_auxiliary_losses_and_evaluation_uses_the_main_head():
    module = classifier("googlenet", 32, aux_logits=True, dropout=0.0, dropout_aux=0.0).train()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        logits, aux2, aux1 = module.net(x)  # BatchNorm in training mode: batch statistics, so the same outputs again
        loss = training_step(module, x, y)
    ce = nn.functional.cross_entropy
    torch.testing.assert_close(loss, ce(logits, y) + 0.3 * (ce(aux1, y) + ce(aux2, y)))
    assert not torch.allclose(loss, ce(logits, y))

    module.eval()
    with torch.no_grad():
        module.validation_step((x, y), 0)
        main = module.net(x)
    assert isinstance(main, torch.Tensor) and main.shape == (4, 4)
    torch.testing.assert_close(module.val_loss.compute(), ce(main, y))
    torch.testing.assert_close(module._logits(x), main)


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_without_auxiliary_heads_the_loss_is_the_main_loss(name):
    module = classifier(name, 80, dropout=0.0).train()
    x, y = torch.randn(2, 3, 80, 80), torch.tensor([0, 1])
    with torch.no_grad():
        expected = nn.functional.cross_entropy(module.net(x), y)
        torch.testing.assert_close(training_step(module, x, y), expected)
