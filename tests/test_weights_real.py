"""A shipped weight of a real dataset (CIFAR-10, Fashion-MNIST, MNIST) reproduces its card's test accuracy on the full
test split, read from the data root as a user has it; skipped when no such weight ships or its data is absent.
``benchmarks/check_weights.py`` checks every shipped weight the same way."""

import pytest

from moderncnn.data import data_root, load_dataset
from moderncnn.errors import DataError
from moderncnn.weights import table

REAL = ("cifar10", "fashion-mnist", "mnist")


def test_a_shipped_real_data_weight_reproduces_its_card():
    from moderncnn.engine.evaluate import evaluate

    shipped = sorted((info for info in table().values() if info.dataset in REAL), key=lambda info: info.size)
    if not shipped:
        pytest.skip(f"no weights of {', '.join(REAL)} ship in this installation")
    info = shipped[0]  # the smallest: the quickest to evaluate
    try:
        load_dataset(info.dataset, download=False)
    except DataError as err:
        if "is not in" in str(err):
            pytest.skip(f"{info.dataset} not in {data_root()} (run ../shared/data/prepare {data_root()})")
        raise
    result = evaluate(f"weights:{info.name}", tta=False)
    assert result.images == 10_000
    assert abs(result.accuracy - info.test_acc) <= 0.002
