"""Where weight files live, how they arrive, and the checksum every load passes.

A bundled weight is read from the package (``moderncnn/weights/files``). Any other is looked for in
``$MODERNCNN_HOME/weights`` (default ``~/.cache/moderncnn/weights``) and downloaded there on first use from its URL,
or from ``$MODERNCNN_WEIGHTS_MIRROR`` (another server's base URL, or a folder) when that is set: with a progress
bar, into ``<file>.part`` first, so an interrupted download resumes where it stopped (an HTTP ``Range`` request).
Every load hashes the bytes it reads and refuses a file whose SHA-256 is not the table's, in one line.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from moderncnn.errors import CheckpointError, DataError
from moderncnn.weights.table import BUNDLED, WeightsInfo

HOME_VARIABLE = "MODERNCNN_HOME"
MIRROR_VARIABLE = "MODERNCNN_WEIGHTS_MIRROR"
CHUNK = 1 << 16
TIMEOUT_S = 30


class OfflineError(DataError):
    """A weight file that is not here and could not be downloaded; the message says where to put it."""


def weights_home() -> Path:
    """``$MODERNCNN_HOME/weights``, default ``~/.cache/moderncnn/weights``: where downloaded weights are kept."""
    home = os.environ.get(HOME_VARIABLE)
    return (Path(home).expanduser() if home else Path.home() / ".cache" / "moderncnn") / "weights"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_verified(info: WeightsInfo, *, progress: bool = True) -> tuple[bytes, Path]:
    """The bytes of ``info``'s file (downloaded first if needed) and its path, after the SHA-256 check.

    Raises:
        CheckpointError: the file's SHA-256 differs from the table's.
        OfflineError: the file is not here and cannot be downloaded.
    """
    path = locate(info, progress=progress)
    data = path.read_bytes()
    digest = sha256_of(data)
    if digest != info.sha256:
        fix = (
            "reinstall moderncnn"
            if info.bundled
            else f"delete it and it is downloaded again, or put a good copy there (sha256 {info.sha256})"
        )
        raise CheckpointError(
            f"refusing {path}: its sha256 is {digest[:16]}... but the weights table says {info.sha256[:16]}... for "
            f"{info.name}; the file is damaged or altered: {fix}"
        )
    return data, path


def locate(info: WeightsInfo, *, progress: bool = True) -> Path:
    """The path of ``info``'s file: in the package, in the cache, or downloaded into the cache now."""
    if info.bundled:
        path = BUNDLED / info.file
        if not path.is_file():
            raise CheckpointError(f"the bundled weight file {path} is missing; reinstall moderncnn")
        return path
    path = weights_home() / info.file
    if not path.is_file():
        download(info, path, progress=progress)
    return path


def source_of(info: WeightsInfo) -> str:
    """Where ``info``'s file comes from: the mirror (base URL or folder) + its name, else its URL."""
    mirror = os.environ.get(MIRROR_VARIABLE)
    if mirror:
        return mirror.rstrip("/") + "/" + info.file
    return info.url or ""


def download(info: WeightsInfo, path: Path, *, progress: bool = True) -> Path:
    """Fetch ``info``'s file into ``path``, resuming a ``<path>.part`` left by an interrupted download, and check it.

    Raises:
        OfflineError: no connection, or the server (or mirror folder) has no such file: one line naming the file,
            where it was looked for, and where to put it by hand.
        CheckpointError: the download's SHA-256 is not the table's (the partial file is removed).
    """
    source = source_of(info)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        if "://" not in source or source.startswith("file://"):
            _copy(Path(source.removeprefix("file://")).expanduser(), part)
        else:
            _fetch(source, part, info, progress)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise OfflineError(
            f"cannot get weights {info.name} from {source} ({reason}); put the file {info.file} (sha256 "
            f"{info.sha256}) into {path.parent}, or set {MIRROR_VARIABLE} to a server or folder that has it"
        ) from None
    digest = sha256_of(part.read_bytes())
    if digest != info.sha256:
        part.unlink()
        raise CheckpointError(
            f"refusing the download of {info.name} from {source}: its sha256 is {digest[:16]}... but the weights "
            f"table says {info.sha256[:16]}...; the server holds another file (try again, or another mirror)"
        )
    part.replace(path)
    return path


def _copy(source: Path, part: Path) -> None:
    if not source.is_file():
        raise FileNotFoundError(f"no file {source}")
    shutil.copyfile(source, part)


def _fetch(url: str, part: Path, info: WeightsInfo, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (a ``Range`` request from its size); a server that ignores the range
    (``200`` instead of ``206``) sends the whole file, which then replaces the partial one."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 (a URL from our table or the user)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the range starts at the end: the partial file is already whole
            return
        raise
    with response:
        resumed = response.status == 206
        total = int(response.headers.get("Content-Length") or 0) + (have if resumed else 0)
        with open(part, "ab" if resumed else "wb") as f, _bar(info, total or info.size, progress) as bar:
            done = have if resumed else 0
            bar(done)
            while chunk := response.read(CHUNK):
                f.write(chunk)
                done += len(chunk)
                bar(done)
    if total and done < total:  # the connection closed early; what arrived stays in the .part file for a resume
        raise ConnectionError(f"the connection closed after {done:,} of {total:,} bytes; run again to resume")


class _bar:
    """A progress bar on stderr (rich), as a callable taking the bytes done; silent when ``enabled`` is false."""

    def __init__(self, info: WeightsInfo, total: int, enabled: bool):
        self.progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self.progress = Progress(
                TextColumn(f"downloading {info.file}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(file=sys.stderr),
                transient=True,
            )
            self.task = self.progress.add_task("download", total=total)

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, done: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done)
