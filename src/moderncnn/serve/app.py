"""The HTTP API and the page: ``create_app(model)`` is an ASGI application (FastAPI) for uvicorn.

Routes: ``GET /`` the page, ``GET /health``, ``GET /metadata``, ``GET /metrics`` (Prometheus text), ``GET /filters``,
``POST /predict`` and ``POST /explain``. Images come as multipart fields named ``file`` (repeat it for several) or as
JSON ``{"images": ["<base64>", ...]}`` (a ``data:`` URL prefix is allowed). Every error is JSON ``{"error": "..."}``
with a 4xx status and one sentence; images live in memory only, nothing from a request is written to disk.
"""

from __future__ import annotations

import base64
import binascii
import json
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from moderncnn.data.image import UnreadableImage
from moderncnn.errors import ModernCNNError
from moderncnn.serve import render
from moderncnn.serve.batcher import WINDOW, Batcher
from moderncnn.serve.guard import Guard, Metrics, check_options
from moderncnn.serve.model import ServedModel

STATIC = Path(__file__).parent / "static"
MAX_FILES = 32  # images in one request
MAX_TOP_K = 1000


class ClientError(Exception):
    """A request the server will not answer; ``status`` is its 4xx code."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _InMemoryParser(MultiPartParser):
    # Starlette spools uploads above 1 MB to a temporary file; the body is already bounded by the size limit and in
    # memory, so its parts stay there too.
    spool_max_size = 2**62


def create_app(
    model: ServedModel,
    *,
    max_batch: int = 32,
    window: float = WINDOW,
    workers: int = 1,
    token: str | None = None,
    max_body_mb: float = 10,
    max_files: int = MAX_FILES,
    max_pixels: int | None = None,
) -> Guard:
    """The server's ASGI application for ``model``.

    Args:
        model: what to serve (:func:`moderncnn.serve.load_model`).
        max_batch: the most images run in one forward pass; 1 turns server-side batching off.
        window: seconds a batch waits for more requests.
        workers: inference threads.
        token: when given, every route but ``/health`` and the page needs ``Authorization: Bearer <token>``.
        max_body_mb: the largest request body, in MB.
        max_files: the most images in one request.
        max_pixels: the largest image (default: ``$MODERNCNN_MAX_PIXELS``, else PIL's bomb level).

    Returns:
        The application; ``app.state`` of the inner FastAPI app (``.fastapi``) holds the model and the batcher.
    """
    check_options(token, max_body_mb)
    metrics = Metrics()
    batcher = Batcher(model.probabilities, max_batch=max_batch, window=window, workers=workers,
                      observe=metrics.observe_batch)  # fmt: skip

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    api = FastAPI(title="moderncnn", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    api.state.model, api.state.batcher, api.state.metrics = model, batcher, metrics
    api.mount("/static", StaticFiles(directory=STATIC), name="static")

    @api.exception_handler(ClientError)
    async def _client_error(request, err: ClientError):
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @api.exception_handler(ModernCNNError)
    async def _user_error(request, err: ModernCNNError):
        return JSONResponse({"error": str(err)}, status_code=400)

    @api.exception_handler(HTTPException)
    async def _http_error(request, err: HTTPException):
        message = {
            404: f"no route {request.method} {request.url.path}; see GET / for the page, or /health, /metadata, "
            "/metrics, POST /predict, POST /explain",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(err.status_code, str(err.detail))
        return JSONResponse({"error": message}, status_code=err.status_code, headers=err.headers)

    @api.exception_handler(RequestValidationError)
    async def _bad_parameter(request, err: RequestValidationError):
        first = err.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "query")
        return JSONResponse({"error": f"bad parameter {where}: {first.get('msg', 'invalid')}"}, status_code=400)

    @api.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse((STATIC / "index.html").read_text())

    @api.get("/health")
    async def health():
        if not batcher.running:
            return JSONResponse({"status": "starting"}, status_code=503)
        return {"status": "ready", "network": model.name}

    @api.get("/metadata")
    async def metadata():
        return {**model.metadata(), "max_batch": max_batch, "max_files": max_files, "max_body_mb": max_body_mb}

    @api.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @api.get("/filters")
    async def filters():
        return await batcher.run_alone(render.filters, model)

    @api.post("/predict")
    async def predict(request: Request, top_k: int = 5):
        if not 1 <= top_k <= MAX_TOP_K:
            raise ClientError(400, f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        images = await _images(request, max_files)
        decoded = await run_in_threadpool(_decode, model, images, max_pixels)
        import torch

        probs = await batcher.submit(torch.stack([x for _, x in decoded]))
        k = min(top_k, len(model.class_names))
        top = probs.topk(k, dim=1)
        predictions = []
        for (name, _), values, indices in zip(images, top.values.tolist(), top.indices.tolist(), strict=True):
            classes = [{"class": model.class_names[i], "probability": p} for i, p in zip(indices, values, strict=True)]
            predictions.append(
                {"file": name, "label": classes[0]["class"], "probability": classes[0]["probability"], "top_k": classes}
            )
        return {"network": model.name, "predictions": predictions, "preprocessing": model.preprocessing}

    @api.post("/explain")
    async def explain(request: Request, target: str | None = None):
        if model.net is None:
            raise ClientError(
                501, "explanations need the network's weights in PyTorch; serve the run, not its ONNX export"
            )
        images = await _images(request, 1)
        (pixels, x), = await run_in_threadpool(_decode, model, images, max_pixels)  # fmt: skip
        index = _target(target, model.class_names)
        answer = await batcher.run_alone(render.explain, model, pixels, x, index)
        return {"network": model.name, "file": images[0][0], **answer, "preprocessing": model.preprocessing}

    app = Guard(api, metrics=metrics, token=token, max_body=int(max_body_mb * 2**20))
    app.fastapi = api
    return app


def _target(target: str | None, names: list[str]) -> int | None:
    if target is None or target == "":
        return None
    if target in names:
        return names.index(target)
    if target.isascii() and target.isdigit() and int(target) < len(names):  # '²'.isdigit() is true too
        return int(target)
    raise ClientError(400, f"unknown class {target!r}; give one of the classes in GET /metadata, or its index")


async def _images(request: Request, max_files: int) -> list[tuple[str, bytes]]:
    """The images of a request, ``(name, bytes)``, from multipart ``file`` fields or JSON base64."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        images = await _multipart(request, max_files)
    elif kind == "application/json":
        images = _from_json(await request.body())
    else:
        raise ClientError(
            415,
            f"content type {kind or '(none)'!r} is not accepted; send images as multipart/form-data fields named "
            '\'file\', or as JSON {"images": ["<base64>", ...]}',
        )
    if not images:
        raise ClientError(400, "the request holds no image; send one or more multipart fields named 'file'")
    if len(images) > max_files:
        raise ClientError(
            413, f"{len(images)} images in one request, above this route's limit of {max_files}; send fewer per request"
        )
    return images


async def _multipart(request: Request, max_files: int) -> list[tuple[str, bytes]]:
    # One file beyond the limit is parsed, so that too many is answered with the count by _images.
    parser = _InMemoryParser(request.headers, request.stream(), max_files=max_files + 1, max_fields=max_files + 1)
    try:
        form = await parser.parse()
    except MultiPartException as err:
        too_many = "Too many" in err.message
        raise ClientError(
            413 if too_many else 400,
            f"more than {max_files} files or fields in one request; send fewer per request"
            if too_many
            else f"the multipart body is malformed ({err.message})",
        ) from None
    images = []
    try:
        for key, value in form.multi_items():
            if key != "file" or isinstance(value, str):
                raise ClientError(400, f"unexpected form field {key!r}; send each image as a file field named 'file'")
            images.append((value.filename or f"file{len(images)}", await value.read()))
    finally:
        await form.close()
    return images


def _from_json(body: bytes) -> list[tuple[str, bytes]]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise ClientError(400, 'the JSON body cannot be parsed; send {"images": ["<base64>", ...]}') from None
    items = payload.get("images") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ClientError(400, 'the JSON body needs a list of base64 strings under "images"')
    images = []
    for i, item in enumerate(items):
        data = item.split(",", 1)[1] if item.startswith("data:") else item
        try:
            images.append((f"image{i}", base64.b64decode(data, validate=True)))
        except (binascii.Error, ValueError):
            raise ClientError(400, f"images[{i}] is not valid base64; encode the file's bytes with base64") from None
    return images


def _decode(model: ServedModel, images: list[tuple[str, bytes]], max_pixels: int | None) -> list:
    decoded = []
    for name, data in images:
        try:
            decoded.append(model.read(data, max_pixels))
        except UnreadableImage as err:
            status = 413 if "above the limit" in str(err) else 400
            raise ClientError(status, f"{name}: {err}") from None
    return decoded
