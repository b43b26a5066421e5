"""What every request passes before a route sees it: metrics, the token and the body-size limit (plain ASGI).

In that order: a refused request is still counted; a request without the token is refused before its body is
read; a body is read into memory only up to the limit (a ``Content-Length`` above it is refused before anything is
read, a body that grows past it while streaming is refused there), then handed on as it came.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from moderncnn.errors import UsageError

# Routes and methods named in the metrics; any other path or method (HTTP allows any token as a method, 8 KB long)
# is counted as "other", and so is every request refused for its token: what a client sends cannot add a series.
ROUTES = ("/", "/health", "/metadata", "/metrics", "/predict", "/explain", "/filters")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


# What an Authorization header carries through every client (curl, httpx, requests, a browser's fetch): printable
# ASCII without spaces. A token with other characters (U+20AC, an empty one) could never be sent, and the server
# would answer 401 to everything.
_TOKEN = re.compile(r"[\x21-\x7e]+")


def check_options(token: str | None, max_body_mb: float) -> None:
    """Refuse a token no client can send and a body limit that is not a positive finite size, in one line each.

    Raises:
        UsageError: naming the option, what is valid and what was given.
    """
    if token is not None and not _TOKEN.fullmatch(token):
        raise UsageError(
            "--token must be printable ASCII characters without spaces (what an 'Authorization: Bearer' header can "
            f"carry), at least one; got {token!r}"
        )
    if (
        isinstance(max_body_mb, bool)
        or not isinstance(max_body_mb, (int, float))
        or not (math.isfinite(max_body_mb) and max_body_mb > 0)
    ):
        raise UsageError(f"max_body_mb must be a positive finite number of MB, got {max_body_mb!r}")


def _bearer(headers) -> bytes:
    """The credentials of an ``Authorization: Bearer`` header (the scheme in any case, RFC 7235), else ``b""``."""
    value = dict(headers).get(b"authorization", b"")
    scheme, _, credentials = value.strip().partition(b" ")
    return credentials.strip() if scheme.lower() == b"bearer" else b""


async def send_error(send, status: int, message: str, headers: list | None = None) -> None:
    """A JSON error ``{"error": message}`` with ``status``."""
    body = json.dumps({"error": message}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body})


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (two apps in one process do not share counts)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self.requests = Counter("moderncnn_requests", "HTTP requests answered", labels, registry=self.registry)
        self.errors = Counter(
            "moderncnn_request_errors", "HTTP requests answered 4xx or 5xx", labels, registry=self.registry
        )
        self.latency = Histogram(
            "moderncnn_request_seconds", "Time to answer a request", ("route",), registry=self.registry
        )
        self.batch_size = Histogram(
            "moderncnn_batch_size",
            "Images per forward pass",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.batch_seconds = Histogram("moderncnn_batch_seconds", "Time of one forward pass", registry=self.registry)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)


def _route(path: str) -> str:
    if path.startswith("/static/"):
        return "/static"
    return path if path in ROUTES else "other"


def _labels(scope, status: int) -> tuple[str, str, str]:
    """``(method, route, status)`` of a request, from fixed sets only."""
    if status == 401:  # not authenticated: one series, whatever it asked for
        return "other", "other", "401"
    method = scope["method"] if scope["method"] in METHODS else "other"
    return method, _route(scope["path"]), str(status)


class Guard:
    """ASGI middleware: metrics, then the bearer token, then the body limit, around ``app``."""

    def __init__(self, app, *, metrics: Metrics, token: str | None, max_body: int):
        self.app, self.metrics, self.token, self.max_body = app, metrics, token, max_body
        self._expected = token.encode("ascii") if token is not None else b""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def counted(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, counted)
        finally:
            labels = _labels(scope, status)
            self.metrics.requests.labels(*labels).inc()
            if status >= 400:
                self.metrics.errors.labels(*labels).inc()
            self.metrics.latency.labels(labels[1]).observe(time.perf_counter() - start)

    async def _guarded(self, scope, receive, send):
        path = scope["path"]
        # The page holds no data and asks for the token itself: a browser cannot add a header to loading a page.
        guarded = self.token is not None and not (path in ("/", "/health") or path.startswith("/static/"))
        if guarded and not hmac.compare_digest(_bearer(scope["headers"]), self._expected):
            return await send_error(
                send,
                401,
                "this server needs its token: send the header 'Authorization: Bearer <token>' given to --token",
                [(b"www-authenticate", b"Bearer")],
            )
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await send_error(send, 413, self._too_large(length.decode("latin-1")))
        chunks, size = [], 0
        while True:  # bounded: each message adds bytes, and past the limit the loop ends
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return await send_error(send, 413, self._too_large(f"more than {size}"))
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # after the body: wait for the client to go away, as the server would
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self, given: str) -> str:
        return (
            f"the request body has {given} bytes, above this server's limit of {self.max_body} bytes "
            f"({self.max_body / 2**20:g} MB); send smaller or fewer images, or restart the server with a larger "
            "--max-body-mb"
        )
