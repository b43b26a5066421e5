import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    # Same random inputs in every test, whatever ran before it.
    torch.manual_seed(0)
    yield


def torchvision_model(name: str, **kwargs):
    """torchvision's randomly initialised network of that name (its GoogLeNet and Inception-v3 without auxiliary
    heads, as ours are by default)."""
    import torchvision

    if name in ("googlenet", "inception_v3"):
        kwargs = {"aux_logits": False, "init_weights": True, **kwargs}
    return getattr(torchvision.models, name)(weights=None, **kwargs)
