"""``moderncnn serve``: every route and every bad input, the same probabilities as ``predict``, batching, limits."""

import base64
import io
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from moderncnn.deploy import export, predict
from moderncnn.errors import UsageError
from moderncnn.serve import create_app, host_warning, load_model, serve
from moderncnn.serve.background import running

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tiny_run) -> Path:
    """A tiny trained BN-LeNet on grey 28 px synthetic images."""
    return tiny_run


@pytest.fixture(scope="module")
def model(run):
    return load_model(run)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    """Grey and RGB images of several sizes and formats."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    shapes = {"grey_40x30.png": (40, 30), "rgb_20x20.png": (20, 20, 3), "rgb_64x50.jpg": (64, 50, 3)}
    paths = []
    for name, shape in shapes.items():
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / name)
        paths.append(root / name)
    return paths


@pytest.fixture
def client(model):
    with TestClient(create_app(model)) as c:
        yield c


def _multipart(*payloads: tuple[str, bytes]) -> list:
    return [("file", (name, data, "application/octet-stream")) for name, data in payloads]


def _png(size=(28, 28)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full(size[::-1], 128, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _noise_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _forged_png(width: int, height: int) -> bytes:
    """A PNG header claiming ``width x height`` pixels, with almost no data: decoding it would fail or explode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_predict_gives_the_probabilities_of_moderncnn_predict(client, run, files):
    expected, failures = predict(run, files, top_k=3)
    assert not failures
    answer = client.post("/predict?top_k=3", files=_multipart(*[(p.name, p.read_bytes()) for p in files]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["preprocessing"]["resize"] == [28, 28] and body["preprocessing"]["channels"] == 1
    for want, got in zip(expected, body["predictions"], strict=True):
        assert got["file"] == Path(want.path).name
        assert [c["class"] for c in got["top_k"]] == want.classes
        np.testing.assert_allclose([c["probability"] for c in got["top_k"]], want.probs, atol=1e-5)
    # The same files as JSON base64 (one as a data: URL) give the same answer.
    images = [base64.b64encode(p.read_bytes()).decode() for p in files]
    images[0] = "data:image/png;base64," + images[0]
    as_json = client.post("/predict?top_k=3", json={"images": images}).json()
    for a, b in zip(as_json["predictions"], body["predictions"], strict=True):
        np.testing.assert_allclose([c["probability"] for c in a["top_k"]], [c["probability"] for c in b["top_k"]])


def test_health_metadata_filters_and_page(client, run, model):
    assert client.get("/health").json()["status"] == "ready"
    meta = client.get("/metadata").json()
    assert meta["network"] == "lenet_bn" and meta["classes"] == model.class_names
    assert meta["input_shape"] == [1, 28, 28] and meta["parameters"] == sum(p.numel() for p in model.net.parameters())
    assert meta["source"] == str(run) and meta["test_accuracy"] is not None
    filters = client.get("/filters").json()
    assert filters["shape"][1] == 1 and Image.open(io.BytesIO(base64.b64decode(filters["png"]))).size[0] > 0
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert "http" not in client.get("/static/app.js").text.replace("http://", "")  # no CDN: nothing loaded from afar


def test_explain_gives_an_overlay_and_the_stages(client, model, files):
    answer = client.post("/explain", files=_multipart((files[0].name, files[0].read_bytes())))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["target"] in model.class_names and 0 <= body["probability"] <= 1
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))
    assert overlay.size == (30, 40)  # the image's own size (under the display limit)
    assert len(body["stages"]) >= 2 and all(Image.open(io.BytesIO(base64.b64decode(s["png"]))) for s in body["stages"])
    chosen = client.post(f"/explain?target={model.class_names[1]}", files=_multipart(("a.png", _png()))).json()
    assert chosen["target_index"] == 1
    two = _multipart(("a.png", _png()), ("b.png", _png()))
    assert client.post("/explain", files=two).status_code == 413  # one image at a time


@pytest.mark.parametrize(
    ("request_kwargs", "status", "words"),
    [
        ({"files": [("file", ("a.txt", b"hello, not an image", "text/plain"))]}, 400, "not an image"),
        ({"files": [("file", ("cut.png", _noise_png()[:300], "image/png"))]}, 400, "cut.png"),
        ({"files": [("file", ("empty.png", b"", "image/png"))]}, 400, "empty"),
        ({"files": [("file", ("bomb.png", _forged_png(30000, 30000), "image/png"))]}, 413, "above the limit"),
        ({"content": b"x" * 30_000, "headers": {"content-type": "application/octet-stream"}}, 413, "limit"),
        ({"files": _multipart(*[(f"{i}.png", _png()) for i in range(4)])}, 413, "above this route's limit of 3"),
        ({"files": _multipart(*[(f"{i}.png", _png()) for i in range(9)])}, 413, "more than 3"),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "not accepted"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "cannot be parsed"),
        ({"json": {"images": ["%%%"]}}, 400, "base64"),
        ({"json": {"pictures": []}}, 400, "images"),
        ({"json": {"images": []}}, 400, "no image"),
        ({"files": {"photo": ("a.png", _png(), "image/png")}}, 400, "named 'file'"),
    ],
    ids=["not-image", "truncated", "zero-bytes", "pixel-bomb", "body-too-large", "too-many-files",
         "far-too-many-files", "content-type", "bad-json", "bad-base64", "no-images-key", "no-image", "wrong-field"],
)  # fmt: skip
def test_bad_input_is_a_4xx_json_error_and_the_server_stays_healthy(model, request_kwargs, status, words):
    with TestClient(create_app(model, max_files=3, max_body_mb=0.02)) as client:
        answer = client.post("/predict", **request_kwargs)
        assert answer.status_code == status, answer.text
        message = answer.json()["error"]
        assert words in message
        assert message.count(". ") == 0, "one sentence"
        assert client.get("/health").status_code == 200
        assert client.post("/predict", files=_multipart(("ok.png", _png()))).status_code == 200


def test_unknown_route_method_and_parameter(client):
    for answer, status in [
        (client.get("/nowhere"), 404),
        (client.get("/predict"), 405),
        (client.post("/predict?top_k=0", files=_multipart(("a.png", _png()))), 400),
        (client.post("/predict?top_k=two", files=_multipart(("a.png", _png()))), 400),
        (client.post("/explain?target=nosuchclass", files=_multipart(("a.png", _png()))), 400),
    ]:
        assert answer.status_code == status and answer.json()["error"], answer.text


def test_token_guards_every_route_but_health_and_the_page(model):
    with TestClient(create_app(model, token="s3cret")) as client:
        assert client.get("/health").status_code == 200 and client.get("/").status_code == 200
        for path in ("/metadata", "/metrics", "/filters"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        files = _multipart(("a.png", _png()))
        assert client.post("/predict", files=files).status_code == 401
        assert client.post("/predict", files=files, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_metrics_count_requests_errors_and_latency(client):
    client.post("/predict", files=_multipart(("a.png", _png())))
    client.post("/predict", files=_multipart(("a.png", b"")))
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert 'moderncnn_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert 'moderncnn_request_errors_total{method="POST",route="/predict",status="400"} 1.0' in text
    assert 'moderncnn_request_errors_total{method="GET",route="other",status="404"} 1.0' in text
    assert 'moderncnn_request_seconds_count{route="/predict"} 2.0' in text
    assert "moderncnn_batch_size_count 1.0" in text


def _concurrent_predictions(url: str, count: int) -> list[httpx.Response]:
    def one(i):
        with httpx.Client(timeout=30) as c:
            return c.post(f"{url}/predict", files=_multipart((f"{i}.png", _png((20 + i, 28)))))

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.parametrize("max_batch", [1, 16])
def test_concurrent_requests_are_batched(model, max_batch):
    app = create_app(model, max_batch=max_batch, window=0.3)
    with running(app) as url:
        answers = _concurrent_predictions(url, 8)
    assert all(a.status_code == 200 for a in answers)
    batches = app.fastapi.state.batcher.batches
    if max_batch == 1:
        assert batches == 8
    else:
        assert batches <= 3, f"8 concurrent requests ran in {batches} forward calls"
    # Each answer is its own image's, whatever batch it ran in.
    alone = [model.probabilities(model.read(_png((20 + i, 28)))[1][None])[0] for i in range(8)]
    for answer, probs in zip(answers, alone, strict=True):
        assert abs(answer.json()["predictions"][0]["probability"] - probs.max().item()) < 1e-5


def test_a_slow_request_does_not_block_health_or_other_requests(model):
    release = threading.Event()

    def slow(batch):
        release.wait(10)  # bounded: the test releases it, or it gives up after 10 s
        return model.probabilities(batch)

    app = create_app(model, max_batch=1, workers=1)
    app.fastapi.state.batcher.forward = slow
    with running(app) as url, httpx.Client(timeout=20) as c, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(c.post, f"{url}/predict", files=_multipart(("a.png", _png())))
        time.sleep(0.2)
        start = time.monotonic()
        assert c.get(f"{url}/health").status_code == 200
        assert c.post(f"{url}/predict", files=_multipart(("a.png", b""))).status_code == 400
        assert time.monotonic() - start < 2.0 and not pending.done()
        release.set()
        assert pending.result(timeout=15).status_code == 200


def test_onnx_export_is_served_with_onnxruntime(run, model, tmp_path):
    out = export(run, "onnx", tmp_path / "net.onnx")
    served = load_model(out.path)
    assert served.backend == "onnxruntime" and served.class_names == model.class_names
    with TestClient(create_app(served)) as client:
        body = client.post("/predict?top_k=3", files=_multipart(("a.png", _png((33, 21))))).json()
        assert client.post("/explain", files=_multipart(("a.png", _png()))).status_code == 501
        assert client.get("/metadata").json()["parameters"] == served.parameters > 0
    want = model.probabilities(model.read(_png((33, 21)))[1][None])[0].topk(3)
    np.testing.assert_allclose([c["probability"] for c in body["predictions"][0]["top_k"]], want.values, atol=1e-4)


def test_wrong_backend_and_options_are_user_errors(run, tmp_path):
    with pytest.raises(UsageError, match="onnx"):
        load_model(run, "onnxruntime")
    with pytest.raises(UsageError, match="backend"):
        load_model(run, "tensorrt")
    with pytest.raises(UsageError, match="port"):
        serve(run, port=70000)
    with pytest.raises(UsageError, match="max_batch"):
        serve(run, max_batch=0)


def test_host_warning_only_for_reachable_servers_without_token():
    assert host_warning("127.0.0.1", None) is None and host_warning("localhost", None) is None
    assert host_warning("::1", None) is None
    assert "no authentication" in host_warning("0.0.0.0", None)
    assert host_warning("0.0.0.0", "t") is None
