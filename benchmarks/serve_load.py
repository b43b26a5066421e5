"""Load and faults of ``moderncnn serve`` on loopback: requests/s and latency with and without batching, and bad input.

Starts ``moderncnn serve RUN`` in a subprocess on a free loopback port (so the clients do not share its interpreter),
then for each number of concurrent clients sends ``--requests`` single-image /predict requests (asyncio + httpx)
and reports requests/s, p50/p95/p99 latency and errors, with ``--max-batch 1`` (no batching) and with batching.
``moderncnn predict`` on the same images gives the images/s of the command line. Faults: ``--faults`` malformed
requests of every kind interleaved with good ones; every bad one must be answered 4xx, every good one with the
right class, and the server's resident memory after the run is compared with before. Every loop is bounded.

    PYTHONPATH=src python benchmarks/serve_load.py [--run RUN] [--requests 300] [--clients 8 32 64] [--faults 100]

Without ``--run`` a tiny ``lenet_bn`` is trained on synthetic 28 px images first (a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, max_batch: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "moderncnn.cli", "serve", str(run), "--port", str(port), "--max-batch", str(max_batch)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def images(count: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


async def load(url: str, pictures: list[bytes], requests: int, clients: int) -> dict:
    latencies, errors = [], 0
    queue = iter(range(requests))

    async def client(http: httpx.AsyncClient):
        nonlocal errors
        for i in queue:  # shared iterator: the clients together send exactly `requests`
            start = time.perf_counter()
            r = await http.post(f"{url}/predict", files={"file": ("x.png", pictures[i % len(pictures)])})
            latencies.append(time.perf_counter() - start)
            errors += r.status_code != 200

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - start
    p50, p95, p99 = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
    return {"rps": requests / seconds, "p50": p50, "p95": p95, "p99": p99, "errors": errors}


BAD = [
    ("not an image", {"files": {"file": ("a.txt", b"hello")}}),
    ("truncated", {"files": {"file": ("a.png", None)}}),  # filled in below
    ("zero bytes", {"files": {"file": ("a.png", b"")}}),
    ("wrong content type", {"content": b"hello", "headers": {"content-type": "text/plain"}}),
    ("too large", {"content": b"x" * (11 * 2**20), "headers": {"content-type": "application/octet-stream"}}),
    ("too many files", {"files": [("file", ("a.png", None))] * 40}),
]


def faults(url: str, pid: int, pictures: list[bytes], count: int, expected: dict[int, str]) -> dict:
    bad = [(n, dict(kw)) for n, kw in BAD]
    bad[1][1]["files"] = {"file": ("a.png", pictures[0][: len(pictures[0]) // 2])}
    bad[5][1]["files"] = [("file", ("a.png", pictures[0]))] * 40
    before = rss_mb(pid)
    wrong_status, wrong_answer = 0, 0
    with httpx.Client(timeout=60) as http:
        for i in range(count):
            name, kwargs = bad[i % len(bad)]
            r = http.post(f"{url}/predict", **kwargs)
            wrong_status += not (400 <= r.status_code < 500)
            j = i % len(pictures)
            good = http.post(f"{url}/predict", files={"file": ("x.png", pictures[j])})
            wrong_answer += good.status_code != 200 or good.json()["predictions"][0]["label"] != expected[j]
    return {"bad": count, "bad_not_4xx": wrong_status, "good_wrong": wrong_answer, "rss_before": before,
            "rss_after": rss_mb(pid)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained run (default: train a tiny lenet_bn)")
    parser.add_argument("--requests", type=int, default=300, help="requests per load level (default: 300)")
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--faults", type=int, default=100, help="malformed requests (default: 100)")
    parser.add_argument("--max-batch", type=int, default=32, help="server batch size when batching (default: 32)")
    args = parser.parse_args()
    from moderncnn.deploy import predict

    tmp = Path(tempfile.mkdtemp(prefix="serve-load-"))
    run = args.run
    if run is None:
        from moderncnn.engine import make_config, train

        dataset = "synthetic:image_size=28,channels=1,num_train=256,num_test=64"
        run = train(make_config("lenet_bn", dataset=dataset, epochs=1, limit_batches=2, run_dir=str(tmp / "r")),
                    quiet=True).run_dir  # fmt: skip
    pictures = images(64)
    folder = tmp / "images"
    folder.mkdir()
    for i, data in enumerate(pictures):
        (folder / f"{i:03d}.png").write_bytes(data)
    start = time.perf_counter()
    predictions, _ = predict(run, folder)
    print(f"moderncnn predict: {len(predictions) / (time.perf_counter() - start):.0f} images/s "
          f"({len(predictions)} images, model load included)")  # fmt: skip
    expected = {i: p.label for i, p in enumerate(predictions)}
    print("| max batch | clients | requests | req/s | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for max_batch in (1, args.max_batch):
        proc, url = start_server(run, max_batch)
        try:
            for clients in args.clients:
                r = asyncio.run(load(url, pictures, args.requests, clients))
                print(f"| {max_batch} | {clients} | {args.requests} | {r['rps']:.0f} | {r['p50']:.1f} | "
                      f"{r['p95']:.1f} | {r['p99']:.1f} | {r['errors']} |", flush=True)  # fmt: skip
            if max_batch != 1:
                f = faults(url, proc.pid, pictures, args.faults, expected)
                growth = 100 * (f["rss_after"] / f["rss_before"] - 1)
                print(f"faults: {f['bad']} bad requests, {f['bad_not_4xx']} not answered 4xx; {f['bad']} good ones, "
                      f"{f['good_wrong']} wrong; server RSS {f['rss_before']:.0f} MB before, "
                      f"{f['rss_after']:.0f} MB after ({growth:+.1f} %)")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
