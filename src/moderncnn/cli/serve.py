"""``moderncnn serve``: answer HTTP requests with a trained network, and a page to explore it."""

from __future__ import annotations

import sys

from moderncnn.cli.options import add_checkpoint
from moderncnn.constants import SERVE_BACKENDS


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a trained run or an ONNX export over HTTP, with a page to explore it in the browser",
        description="Serve a run directory, a .ckpt file or an ONNX export (with the OUT.onnx.json `moderncnn export` "
        "writes beside it): POST /predict and /explain, GET /health, /metadata, /metrics, and a page at / to try your "
        "own images. Concurrent requests are batched. Binds to 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument(
        "source",
        metavar="RUN_OR_EXPORT",
        help="a run directory, a .ckpt file, an .onnx export or weights:NETWORK-DATASET (see `moderncnn weights`)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--backend",
        choices=SERVE_BACKENDS,
        help="torch for a run or checkpoint, onnxruntime for an .onnx export (default: from RUN_OR_EXPORT)",
    )
    p.add_argument("--max-batch", type=int, default=32, help="most images in one forward pass; 1: no batching (32)")
    p.add_argument("--workers", type=int, default=1, help="inference threads running batches at once (default: 1)")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every route but /health and the page")
    p.add_argument("--max-body-mb", type=float, default=10, help="largest request body in MB (default: 10)")
    add_checkpoint(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from moderncnn.serve import host_warning, serve

    warning = host_warning(args.host, args.token)
    if warning:
        print(f"moderncnn serve: warning: {warning}", file=sys.stderr)
    serve(
        args.source,
        host=args.host,
        port=args.port,
        backend=args.backend,
        max_batch=args.max_batch,
        workers=args.workers,
        token=args.token,
        max_body_mb=args.max_body_mb,
        checkpoint=args.checkpoint,
    )
    return 0
