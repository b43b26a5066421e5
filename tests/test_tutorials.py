"""Every tutorial in docs/tutorials/ executes, at smoke size, in a fresh Jupyter kernel; a cell that raises fails.

``MODERNCNN_DOCS_SMOKE=1`` makes each page train for two batches on generated images (no dataset, no network), so
the pages' code is checked, not their numbers (`make docs-execute` runs them at full size). A page that needs a
feature this version lacks (its ``# requires:`` lines) is skipped with that reason.
"""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("docs_execute", ROOT / "docs" / "tools" / "execute.py")
docs_execute = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_execute)


# The chapter pages share one template and differ only in the network: CI executes ResNet's, and the other six run
# with the slow tests (`make test-slow`), to keep `make test` short (all pages together: about 4 CPU-minutes here).
SLOW = {"alexnet", "vgg", "nin", "googlenet", "batch_norm", "densenet"}
SOURCES = [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW else p for p in docs_execute.sources()]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_tutorial_executes_at_smoke_size(source, monkeypatch):
    reason = docs_execute.missing_feature(source)
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("MODERNCNN_DOCS_SMOKE", "1")
    monkeypatch.delenv("MODERNCNN_DOCS_RUNS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = docs_execute.execute(source, timeout=300)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{source.stem} showed no picture"


def _tutorial_module(monkeypatch, **env):
    for name in ("MODERNCNN_DOCS_SMOKE", "MODERNCNN_DOCS_RUNS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("_tutorial", ROOT / "docs" / "tutorials" / "_tutorial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_page_finds_finished_runs_where_reproduce_writes_them(tmp_path, monkeypatch):
    finished = tmp_path / "reproduce" / "d2l-ch7-fast" / "resnet18_d2l"
    finished.mkdir(parents=True)
    (finished / "results.json").write_text("{}")
    unfinished = tmp_path / "densenet_d2l"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("model: densenet_d2l\n")
    page = _tutorial_module(monkeypatch, MODERNCNN_DOCS_RUNS=str(tmp_path))
    assert page.BUDGET == "fast"
    assert page.finished_run("resnet18_d2l", "d2l-ch7") == finished
    assert page.finished_run("densenet_d2l", "d2l-ch7") is None  # not finished: the page trains instead
    assert page.finished_run("resnet18_d2l", "uva-tutorial5") is None
    smoke = _tutorial_module(monkeypatch, MODERNCNN_DOCS_RUNS=str(tmp_path), MODERNCNN_DOCS_SMOKE="1")
    assert smoke.BUDGET == "smoke" and smoke.finished_run("resnet18_d2l", "d2l-ch7") is None


def test_smoke_settings_are_two_small_batches_of_generated_images(monkeypatch):
    page = _tutorial_module(monkeypatch, MODERNCNN_DOCS_SMOKE="1")
    values = page.settings("uva-tutorial5", "resnet_uva", epochs=3)
    assert values["dataset"].startswith("synthetic:image_size=32,channels=3")
    assert (values["epochs"], values["limit_batches"], values["batch_size"], values["val_size"]) == (1, 2, 32, 64)
    fast = _tutorial_module(monkeypatch).settings("uva-tutorial5", "resnet_uva", epochs=3)
    assert (fast["dataset"], fast["epochs"], fast["schedule"]) == ("cifar10", 3, "onecycle")
    assert "limit_batches" not in fast
