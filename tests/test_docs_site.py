"""The documentation site: built strictly and offline by mkdocs, then read in headless Chromium.

The build (`mkdocs build --strict`, as `make docs` runs it) fails on any warning: a broken link between pages, a
missing image, an API name mkdocstrings cannot find. The generated pages are checked against the code they come
from, and no page may load anything from another host. The browser test serves the built site on 127.0.0.1 and
opens every page (no JavaScript errors, every local link and image resolves) and searches for "DenseNet".
Skipped, with the reason, only where Debian's chromium is absent (as tests/test_serve_browser.py).
"""

import http.server
import importlib.util
import re
import shutil
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

import moderncnn as mc

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-4000:]
    return out


def test_generated_reference_matches_the_code(site):
    models = (site / "reference" / "models.html").read_text()
    missing = [name for name in mc.list_models() if f"<code>{name}</code>" not in models]
    assert not missing, f"the model zoo page lacks {missing}"
    cli = (site / "reference" / "cli.html").read_text()
    for command in ("moderncnn train", "moderncnn reproduce", "moderncnn data stats"):
        assert command in cli
    assert "--batch-size" in cli and "--recipe" in cli
    api = (site / "reference" / "api.html").read_text()
    public = ["registry.create_model", "registry.list_models", "summarize.summary", "run.config.TrainConfig",
              "engine.training.train", "deploy.predict.predict", "deploy.export.export_module", "inspect"]  # fmt: skip
    if "list_weights" in mc._EXPORTS:
        public.append(f"{mc._EXPORTS['list_weights'].removeprefix('moderncnn.')}.list_weights")
    missing = [name for name in public if f'id="moderncnn.{name}"' not in api]
    assert not missing, f"the API page lacks {missing}"
    assert (site / "tutorials").is_dir() and list((site / "tutorials").glob("resnet.html"))


def test_nothing_is_loaded_from_another_host(site):
    remote = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""", re.I)
    offenders = [p.relative_to(site).as_posix() for p in site.rglob("*.html") if remote.search(p.read_text())]
    assert not offenders, f"pages that load from another host: {offenders}"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.skipif(
    not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (apt-get install -y chromium)",
)
def test_every_page_loads_links_resolve_and_search_finds_densenet(site):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright's Python package is not installed")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    errors: list[str] = []
    broken: list[str] = []
    checked = 0
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
            try:
                page = browser.new_page()
                current = {"url": ""}
                page.on("console", lambda m: errors.append(f"{current['url']}: {m.text}") if m.type == "error" else 0)
                page.on("pageerror", lambda e: errors.append(f"{current['url']}: {e}"))
                page.on("response", lambda r: broken.append(f"{r.url} ({r.status})") if r.status >= 400 else None)
                for name in pages:
                    current["url"] = base + name
                    page.goto(base + name, wait_until="load", timeout=30_000)
                    targets = page.eval_on_selector_all(
                        "a[href], img[src]", "els => els.map(e => e.getAttribute('href') || e.getAttribute('src'))"
                    )
                    for target in targets:
                        url = urlparse(urljoin(base + name, target))
                        if url.netloc != urlparse(base).netloc or not url.path:
                            continue
                        path = site / unquote(url.path).lstrip("/")
                        if path.is_dir():
                            path = path / "index.html"
                        checked += 1
                        if not path.exists():
                            broken.append(f"{name} -> {target}")
                page.goto(base + "index.html", timeout=30_000)
                page.click(".md-search__input", timeout=10_000)
                page.keyboard.type("DenseNet")
                page.wait_for_selector(".md-search-result__item", timeout=30_000)
                results = page.inner_text(".md-search-result")
            finally:
                browser.close()
    finally:
        server.shutdown()
    assert len(pages) >= 15 and checked > 20 * len(pages), (pages, checked)
    assert not errors, f"JavaScript errors: {errors}"
    assert not broken, f"links or images that do not resolve: {sorted(set(broken))}"
    assert "DenseNet" in results


def test_navigation_picks_up_new_pages_and_executed_tutorials(tmp_path):
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "tools" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    (tmp_path / "tutorials").mkdir()
    for name in ("index.md", "weights.md", "training.md", "sweeps.md"):
        (tmp_path / name).write_text(f"# {name}\n")
    for stem in ("densenet", "resnet", "_tutorial"):
        (tmp_path / "tutorials" / f"{stem}.py").write_text(f"# %% [markdown]\n# # Title of {stem}\n")
    (tmp_path / "tutorials" / "resnet.ipynb").write_text("{}")
    nav = hooks.on_config({"docs_dir": str(tmp_path)})["nav"]
    assert nav[:4] == ["index.md", "training.md", "sweeps.md", "weights.md"]  # the guide's order, then new pages
    assert nav[4] == {"Tutorials": [{"Title of resnet": "tutorials/resnet.ipynb"},
                                    {"Title of densenet": "tutorials/densenet.py"}]}  # fmt: skip
    assert nav[5] == {"Reference": ["reference/api.md", "reference/models.md", "reference/cli.md"]}
