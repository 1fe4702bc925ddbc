"""Opt-in downloads of a few curated chat models: resumable, checked, under IT's policy.

Nothing here runs unless a person asks for a model by name (the picker's Download button,
`confidant models download NAME`). IT switches it off with `allow_downloads = false` in the
machine settings, or points it at an internal mirror with `model_download_url` (files are then
fetched flat: `{model_download_url}/{file}`). Every entry carries the SHA-256 of its file; an
entry without one is refused, and a file whose hash differs is deleted, never used.

A download goes to `<data dir>/models/<file>.part` and is renamed only once its hash matches;
cut short (server gone, disk full, Stop), the part stays and the next attempt resumes it with an
HTTP Range request (a server that ignores Range starts it again from the beginning).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import shutil
import socket
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.core.cancel import Cancelled, CancelToken

CHUNK = 1 << 20
TIMEOUT_S = 30.0
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE = re.compile(r"^[\w.\-]{1,200}\.gguf$", re.ASCII)
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class DownloadError(Exception):
    """The download failed; the message says why and what to do, in plain words."""


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    file: str
    url: str
    size: int
    sha256: str  # empty: not filled in yet, the entry cannot be downloaded
    good_for: str = ""
    licence: str = ""
    size_exact: bool = True  # `size` is the file's exact byte count (else the page's rounding)


def catalog_path() -> Path:
    from app.paths import resources_dir

    return resources_dir() / "models" / "catalog.toml"


def load_catalog(path: Path | None = None) -> list[CatalogEntry]:
    """The curated list (resources/models/catalog.toml); entries with a bad file name or hash
    are left out rather than trusted."""
    try:
        with open(path or catalog_path(), "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    out = []
    for raw in data.get("model", []):
        if not isinstance(raw, dict):
            continue
        try:
            entry = CatalogEntry(
                id=str(raw["id"]),
                name=str(raw["name"]),
                file=str(raw["file"]),
                url=str(raw["url"]),
                size=int(raw["size"]),
                sha256=str(raw.get("sha256", "")).lower().strip(),
                good_for=str(raw.get("good_for", "")),
                licence=str(raw.get("licence", "")),
                size_exact=bool(raw.get("size_exact", True)),
            )
        except (KeyError, TypeError, ValueError):
            continue
        if not _FILE.match(entry.file) or (entry.sha256 and not _SHA256.match(entry.sha256)):
            continue
        out.append(entry)
    return out


def find_entry(name: str, entries: list[CatalogEntry] | None = None) -> CatalogEntry | None:
    key = name.strip().lower()
    for entry in load_catalog() if entries is None else entries:
        if key in (entry.id.lower(), entry.file.lower(), entry.name.lower()):
            return entry
    return None


def policy(settings) -> tuple[bool, str]:
    """(allowed, why not) under the settings IT may have locked."""
    if not getattr(settings, "allow_downloads", True):
        return False, (
            "Downloading models is switched off on this computer by your IT department "
            "(allow_downloads = false). Ask them for a model file."
        )
    return True, ""


def downloads_dir(home: Path) -> Path:
    return home / "models"


def source_url(entry: CatalogEntry, settings) -> str:
    """Where the file comes from: IT's mirror when set, else the catalog's own address."""
    base = str(getattr(settings, "model_download_url", "") or "").strip()
    url = f"{base.rstrip('/')}/{urllib.parse.quote(entry.file)}" if base else entry.url
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(
            f"The model address '{url}' is not a web address (http or https). "
            "Check model_download_url in the settings."
        )
    return url


def sha256_of(path: Path, cancel: CancelToken | None = None) -> hashlib._Hash:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            if cancel is not None and cancel.cancelled:
                raise Cancelled()
            h.update(chunk)
    return h


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def download(
    entry: CatalogEntry,
    home: Path,
    settings,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Fetch `entry` into the data directory's models folder and return its path, resuming
    a part left by an earlier attempt. Raises DownloadError (Cancelled on Stop)."""
    allowed, why = policy(settings)
    if not allowed:
        raise DownloadError(why)
    if not entry.sha256:
        raise DownloadError(
            f"'{entry.name}' has no checksum in the model list yet, so a download could not be "
            "checked: it is refused. Your IT department fills the checksum in "
            "(resources/models/catalog.toml)."
        )
    url = source_url(entry, settings)
    folder = downloads_dir(home)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / entry.file
    part = folder / (entry.file + ".part")
    whole = target.is_file() and (not entry.size_exact or target.stat().st_size == entry.size)
    if whole and sha256_of(target, cancel).hexdigest() == entry.sha256:
        return target  # already here
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder / (entry.file + ".lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise DownloadError(f"'{entry.name}' is already being downloaded.") from None
    try:
        return _fetch(entry, url, part, target, progress, cancel, timeout)
    finally:
        lock.release()


def _fetch(entry, url, part: Path, target: Path, progress, cancel, timeout) -> Path:
    offset = part.stat().st_size if part.is_file() else 0
    if entry.size_exact and offset > entry.size:
        part.unlink()
        offset = 0
    free = shutil.disk_usage(part.parent).free
    if entry.size - offset > free:
        raise DownloadError(
            f"Not enough disk space for '{entry.name}': it needs {_gb(entry.size - offset)} "
            f"more and {_gb(free)} is free in {part.parent}. Free some space and try again."
        )
    digest = sha256_of(part, cancel) if offset else hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "Confidant"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    host = urllib.parse.urlsplit(url).netloc
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # http(s) only: source_url
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to fetch: the part may be whole
            return _finish(entry, part, target, digest)
        raise DownloadError(
            f"The server {host} refused '{entry.file}' (HTTP {exc.code} {exc.reason})."
            + (" Check model_download_url in the settings." if exc.code == 404 else "")
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(_unreachable(host, exc)) from None
    with response:
        total = entry.size
        if offset and response.status == 206:
            m = _RANGE.match(response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                offset = 0  # a range we did not ask for: start again
                digest = hashlib.sha256()
                mode = "wb"
            else:
                mode = "ab"
        else:
            if offset:  # the server ignored Range: start again from the beginning
                offset = 0
                digest = hashlib.sha256()
            mode = "wb"
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and (not entry.size_exact or not total):
            total = offset + int(length)
        done = offset
        try:
            with open(part, mode) as out:
                if progress:
                    progress(done, total)
                while True:
                    if cancel is not None and cancel.cancelled:
                        raise Cancelled()
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if entry.size_exact and done > entry.size:
                        out.close()
                        part.unlink()
                        raise DownloadError(
                            f"The server sent more than '{entry.file}' should hold "
                            f"({entry.size:,} bytes): it is not the expected file. Nothing was "
                            "kept."
                        )
                    if progress:
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                raise DownloadError(
                    f"The disk filled up while downloading '{entry.name}' "
                    f"({_gb(done)} of {_gb(total)} kept). Free "
                    f"{_gb(max(0, total - done))} in {part.parent} and download again: it "
                    "resumes where it stopped."
                ) from None
            if isinstance(exc, (socket.timeout, ConnectionError)) or exc.errno is None:
                raise DownloadError(_cut_short(host, done, total)) from None
            raise DownloadError(
                f"'{entry.file}' could not be saved ({exc.strerror or exc})."
            ) from None
        except (http.client.HTTPException, urllib.error.URLError) as exc:
            raise DownloadError(_cut_short(host, done, total, exc)) from None
    if entry.size_exact and done < entry.size:
        raise DownloadError(_cut_short(host, done, entry.size))
    return _finish(entry, part, target, digest)


def _finish(entry: CatalogEntry, part: Path, target: Path, digest) -> Path:
    if digest.hexdigest() != entry.sha256:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"The downloaded '{entry.file}' is not the expected file (its SHA-256 checksum "
            "differs): it was deleted. The server or a proxy may have changed it; tell your IT "
            "department."
        )
    os.replace(part, target)
    return target


def _unreachable(host: str, exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return (
        f"The model server {host} could not be reached ({reason}). Check the network "
        "connection (or model_download_url) and try again."
    )


def _cut_short(host: str, done: int, total: int, exc: BaseException | None = None) -> str:
    return (
        f"The download stopped: the server {host} stopped sending after {_gb(done)} of "
        f"{_gb(total)}. What arrived is kept; download again to resume."
    )
