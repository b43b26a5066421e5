"""The page of ``moderncnn serve`` in a real browser: Debian's headless Chromium driven by Playwright's Python API.

Set ``MODERNCNN_SCREENSHOT=path.png`` to keep the screenshot (the README's picture of the page); by default it goes
to the test's temporary folder. ``MODERNCNN_SCREENSHOT_RUN`` and ``MODERNCNN_SCREENSHOT_IMAGE`` serve a trained run
and upload a real image instead of the tiny network and the noise image (``benchmarks/readme_pictures.sh`` sets them).
Skipped, with the reason, only where ``/usr/bin/chromium`` is absent.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from moderncnn.engine import make_config, train
from moderncnn.serve import create_app, load_model
from moderncnn.serve.background import running

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (apt-get install -y chromium)",
)


def test_page_classifies_an_uploaded_image_without_javascript_errors(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright's Python package is not installed")
    torch.set_num_threads(1)
    run = os.environ.get("MODERNCNN_SCREENSHOT_RUN")
    if run is None:
        dataset = "synthetic:image_size=28,channels=1,num_train=256,num_test=64"
        config = make_config(
            "lenet_bn", dataset=dataset, epochs=1, batch_size=64, limit_batches=2, run_dir=str(tmp_path / "r")
        )
        run = train(config, quiet=True).run_dir
    model = load_model(run)
    image = Path(os.environ.get("MODERNCNN_SCREENSHOT_IMAGE", tmp_path / "digit.png"))
    if not image.exists():
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)).save(image)
    expected = model.probabilities(model.read(image.read_bytes())[1][None])[0].argmax().item()
    screenshot = Path(os.environ.get("MODERNCNN_SCREENSHOT", tmp_path / "serve-page.png"))

    errors: list[str] = []
    with running(create_app(model)) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, timeout=30_000)
            page.wait_for_selector("#filters:not([hidden])", timeout=30_000)
            assert model.name in page.inner_text("#network-name")
            page.set_input_files("#file", str(image))
            page.wait_for_function("document.getElementById('top-label').textContent.length > 1", timeout=30_000)
            page.wait_for_selector("#overlay:not([hidden])", timeout=30_000)
            page.wait_for_selector("#stages figure", timeout=30_000)
            label = page.inner_text("#top-label")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert label == model.class_names[expected]
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert screenshot.stat().st_size > 0
