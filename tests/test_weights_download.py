"""Weights by URL: downloaded into $MODERNCNN_HOME/weights from a local HTTP server on 127.0.0.1 (with a resumed
download after a cut connection), a wrong checksum, a mirror, and the one-line error when offline."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from moderncnn.cli import main
from moderncnn.errors import CheckpointError
from moderncnn.weights import OfflineError, get_weights_info, load_network
from moderncnn.weights.store import BUNDLED, sha256_of

SHIPPED = "lenet_bn-digits"
NAME = "lenet_bn-hosted"


class Server:
    """Serves ``files`` (name -> bytes) with ``Range`` support; ``cut_next`` makes the next response stop half-way
    (the connection closes after half the promised bytes). ``ranges`` records each request's Range header."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.ranges, self.cut_next = files, [], False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                data = server.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                asked = self.headers.get("Range")
                server.ranges.append(asked)
                start = int(asked.removeprefix("bytes=").rstrip("-")) if asked else 0
                body = data[start:]
                self.send_response(206 if asked else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_next:
                    server.cut_next = False
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def weight_bytes():
    return (BUNDLED / get_weights_info(SHIPPED).file).read_bytes()


@pytest.fixture
def server(weight_bytes):
    server = Server({f"{NAME}.safetensors": weight_bytes})
    yield server
    server.close()


@pytest.fixture
def hosted(tmp_path, monkeypatch, weight_bytes):
    """A table entry for the shipped weight's bytes at a URL (through $MODERNCNN_WEIGHTS_TABLE), and an empty
    $MODERNCNN_HOME; returns a function that sets the entry's URL and sha256."""
    monkeypatch.setenv("MODERNCNN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MODERNCNN_WEIGHTS_MIRROR", raising=False)
    entry = get_weights_info(SHIPPED).to_dict()
    entry.pop("name")

    def publish(url: str, sha256: str | None = None):
        extra = tmp_path / f"table-{len(list(tmp_path.glob('table-*')))}.json"
        file = {"file": f"{NAME}.safetensors", "sha256": sha256 or sha256_of(weight_bytes)}
        extra.write_text(json.dumps({NAME: {**entry, **file, "url": url}}))
        monkeypatch.setenv("MODERNCNN_WEIGHTS_TABLE", str(extra))
        return get_weights_info(NAME)

    return publish


def same_as_shipped(net):
    shipped = load_network(SHIPPED)
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, shipped.state_dict()[key])


def test_download_into_the_weights_home(server, hosted, tmp_path):
    info = hosted(f"{server.url}/{NAME}.safetensors")
    same_as_shipped(load_network(info, progress=False))
    assert (tmp_path / "home" / "weights" / info.file).is_file()
    load_network(info, progress=False)  # the second load reads the copy
    assert server.ranges == [None]


def test_a_cut_download_resumes_where_it_stopped(server, hosted, tmp_path, weight_bytes):
    info = hosted(f"{server.url}/{NAME}.safetensors")
    server.cut_next = True
    with pytest.raises(OfflineError, match=f"cannot get weights {NAME}"):
        load_network(info, progress=False)
    part = tmp_path / "home" / "weights" / f"{info.file}.part"
    have = part.stat().st_size
    assert 0 < have < len(weight_bytes)
    same_as_shipped(load_network(info, progress=False))
    assert server.ranges == [None, f"bytes={have}-"]  # the second request asked only for the rest
    assert not part.exists()


def test_a_download_with_the_wrong_checksum_is_refused_and_not_kept(server, hosted, tmp_path):
    info = hosted(f"{server.url}/{NAME}.safetensors", sha256="0" * 64)
    with pytest.raises(CheckpointError, match="refusing the download of .* sha256") as err:
        load_network(info, progress=False)
    assert "\n" not in str(err.value)
    assert not any((tmp_path / "home" / "weights").iterdir())


def test_a_mirror_server_or_folder_replaces_the_url(server, hosted, tmp_path, monkeypatch, weight_bytes):
    info = hosted("http://127.0.0.1:9/nowhere/lenet_bn-hosted.safetensors")
    monkeypatch.setenv("MODERNCNN_WEIGHTS_MIRROR", server.url + "/")
    same_as_shipped(load_network(info, progress=False))
    (tmp_path / "home" / "weights" / info.file).unlink()
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / info.file).write_bytes(weight_bytes)
    monkeypatch.setenv("MODERNCNN_WEIGHTS_MIRROR", str(folder))
    same_as_shipped(load_network(info, progress=False))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_the_error_names_the_file_and_where_to_put_it(hosted, tmp_path, capsys):
    hosted(f"http://127.0.0.1:{closed_port()}/{NAME}.safetensors")
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("L", (8, 8)).save(image)
    assert main(["predict", f"weights:{NAME}", str(image)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert f"put the file {NAME}.safetensors" in err and str(tmp_path / "home" / "weights") in err
    assert "MODERNCNN_WEIGHTS_MIRROR" in err
