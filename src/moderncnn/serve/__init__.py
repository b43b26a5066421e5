"""Serve a trained network over HTTP, with a page to explore it in the browser (``moderncnn serve``).

- :func:`load_model`: a run directory, a checkpoint or an ONNX export (with its preprocessing JSON) as a
  :class:`ServedModel`, reading images exactly as ``moderncnn predict`` does;
- :func:`create_app`: the ASGI application (FastAPI): ``/predict``, ``/explain``, ``/health``, ``/metadata``,
  ``/metrics``, ``/filters`` and the page at ``/``; concurrent requests batched, inference off the event loop;
- :func:`serve`: both, run by uvicorn.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from moderncnn.serve.app import create_app
from moderncnn.serve.guard import check_options
from moderncnn.serve.model import BACKENDS, ServedModel, load_model

__all__ = ["BACKENDS", "ServedModel", "create_app", "host_warning", "load_model", "serve"]


def host_warning(host: str, token: str | None) -> str | None:
    """A warning for a server reachable from other machines without a token, else ``None``."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback or token:
        return None
    return (
        f"serving on {host}: anyone who can reach this machine can use the server, which has no authentication; "
        "pass --token to require one, or bind to 127.0.0.1"
    )


def serve(
    source: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str | None = None,
    max_batch: int = 32,
    workers: int = 1,
    token: str | None = None,
    max_body_mb: float = 10,
    checkpoint: str = "best",
) -> None:
    """Load ``source`` and answer HTTP requests on ``host:port`` until interrupted (see :func:`create_app`)."""
    import uvicorn

    from moderncnn.errors import UsageError

    if not 0 <= port <= 65535:
        raise UsageError(f"port must be in 0..65535, got {port}")
    for name, value in (("max_batch", max_batch), ("workers", workers)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    check_options(token, max_body_mb)  # before the model loads (create_app checks again, for Python callers)
    model = load_model(source, backend, checkpoint)
    app = create_app(model, max_batch=max_batch, workers=workers, token=token, max_body_mb=max_body_mb)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
