"""EasyDict and open_url, as EDM's dnnlib.util names them, so an EDM user's habits and cache carry over.

`open_url` opens a local path, a file:// URL or an http(s):// URL. Downloads go to a cache folder
(EDM's: $DNNLIB_CACHE_DIR, else ~/.cache/dnnlib/downloads, file names `<md5 of the URL>_<name>`), so a
network EDM already downloaded is found offline, and a second run does not download again. A download
shows a tqdm progress bar on stderr and is put in place atomically; a failure is one line naming the URL
and the way out (`OpenURLError`, a ValueError). Only the standard library's urllib fetches.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import re
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any

import tqdm

from torch_utils.files import atomic_write, check_writable

_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_cache_dir: str | None = None


class EasyDict(dict):
    """A dict whose keys are also attributes (EDM's option bundles: `c.network_kwargs.dropout`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


class OpenURLError(ValueError):
    """A URL that cannot be opened; the message is one line naming it and what to do."""


def set_cache_dir(path: str | os.PathLike | None) -> None:
    """Use this folder for downloads (None: back to $DNNLIB_CACHE_DIR or ~/.cache/dnnlib)."""
    global _cache_dir
    _cache_dir = None if path is None else str(path)


def make_cache_dir_path(*paths: str) -> str:
    """A path inside the cache folder: set_cache_dir's, else $DNNLIB_CACHE_DIR, else ~/.cache/dnnlib (EDM's
    order, so both share one cache)."""
    if _cache_dir is not None:
        return os.path.join(_cache_dir, *paths)
    if "DNNLIB_CACHE_DIR" in os.environ:
        return os.path.join(os.environ["DNNLIB_CACHE_DIR"], *paths)
    for home in ("HOME", "USERPROFILE"):
        if home in os.environ:
            return os.path.join(os.environ[home], ".cache", "dnnlib", *paths)
    return os.path.join(tempfile.gettempdir(), ".cache", "dnnlib", *paths)


def is_url(obj: Any, allow_file_urls: bool = True) -> bool:
    """Whether `obj` is a string of the form scheme://… (file:// counts unless allow_file_urls is False)."""
    if not isinstance(obj, str) or not _URL_RE.match(obj):
        return False
    return allow_file_urls or not obj.lower().startswith("file://")


def file_url_path(url: str) -> str:
    """The local path of a file:// URL (file:///abs/path or file://localhost/abs/path, %-escapes decoded)."""
    parts = urllib.parse.urlparse(url)
    if parts.netloc not in ("", "localhost"):
        raise OpenURLError(f"{url}: a file:// URL names this machine's files (file:///path), not host '{parts.netloc}'")
    path = urllib.request.url2pathname(parts.path)
    if re.match(r"^[/\\][a-zA-Z]:", path):  # file:///c:/x on Windows
        path = path[1:]
    return path


def _cache_name(url: str) -> str:
    """EDM's cache file name: the md5 of the URL, then the URL's file name made safe (EDM finds its files by
    the md5 prefix alone, and so does `open_url`)."""
    name = os.path.basename(urllib.parse.urlparse(url).path) or "download"
    safe = re.sub(r"[^0-9a-zA-Z-._]", "_", name)[:128]
    return f"{hashlib.md5(url.encode('utf-8')).hexdigest()}_{safe}"


def _offline(error: BaseException) -> bool:
    """No route to the server at all (name resolution, refused connection): retrying will not help."""
    reason = getattr(error, "reason", error)
    return isinstance(reason, (socket.gaierror, ConnectionRefusedError))


def _why(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    reason = getattr(error, "reason", None) or error
    return f"{type(reason).__name__}: {reason}".splitlines()[0][:200]


def _download(url: str, dest: IO[bytes], timeout: float, progress: bool) -> None:
    """Stream `url` into `dest` with a progress bar; OSError if nothing or too little arrived."""
    request = urllib.request.Request(url, headers={"User-Agent": "infonoise-dnnlib"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        name = os.path.basename(urllib.parse.urlparse(url).path) or url
        got = 0
        with tqdm.tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=not progress, file=sys.stderr
        ) as bar:
            while chunk := response.read(1 << 20):
                dest.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
        if got == 0:
            raise OSError("the server sent no data")
        if total is not None and got != total:
            raise OSError(f"the transfer stopped after {got} of {total} bytes")


def open_url(
    url: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    num_attempts: int = 3,
    verbose: bool = True,
    return_filename: bool = False,
    cache: bool = True,
    timeout: float = 60.0,
) -> Any:
    """A binary file object for a local path, file:// or http(s):// URL (EDM's signature), or with
    return_filename its local file name (the cached copy for http(s)). http(s) downloads land in the cache
    unless cache=False; `verbose` shows the progress bar. Transient failures are retried `num_attempts`
    times; a machine without a network fails at once. Errors: FileNotFoundError for a missing local file,
    OpenURLError (one line) for a URL."""
    assert num_attempts >= 1 and not (return_filename and not cache)
    url = os.fspath(url)
    if not is_url(url):
        if not os.path.isfile(url):
            raise FileNotFoundError(f"{url}: not found" + (" (a folder, not a file)" if os.path.isdir(url) else ""))
        return url if return_filename else open(url, "rb")
    scheme = url.split(":", 1)[0].lower()
    if scheme == "file":
        path = file_url_path(url)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{url}: no such file {path}")
        return path if return_filename else open(path, "rb")
    if scheme not in ("http", "https"):
        raise OpenURLError(f"{url}: unsupported URL scheme '{scheme}'; give a local path, file://, http:// or https://")

    folder = str(cache_dir) if cache_dir is not None else make_cache_dir_path("downloads")
    if cache:
        found = glob.glob(os.path.join(glob.escape(folder), hashlib.md5(url.encode("utf-8")).hexdigest() + "_*"))
        if len(found) == 1:
            return found[0] if return_filename else open(found[0], "rb")

    target = Path(folder) / _cache_name(url)
    if cache:
        try:
            check_writable(target, "download cache file")
        except ValueError:
            raise OpenURLError(
                f"{url}: the cache folder {folder} cannot be written; set DNNLIB_CACHE_DIR to a writable folder"
            ) from None
    error: BaseException | None = None
    for attempt in range(num_attempts):
        try:
            if not cache:
                buffer = io.BytesIO()
                _download(url, buffer, timeout, verbose)
                buffer.seek(0)
                return buffer
            with atomic_write(target, "wb") as f:  # a failed transfer leaves no file under the name
                _download(url, f, timeout, verbose)
            return str(target) if return_filename else open(target, "rb")
        except (urllib.error.URLError, OSError, ValueError) as e:  # HTTPError, timeouts, resets, bad URLs
            error = e
            if _offline(e) or (isinstance(e, urllib.error.HTTPError) and e.code < 500) or isinstance(e, ValueError):
                break
            time.sleep(0.25 * 2**attempt)
    hint = (
        "no network connection? Download it on a connected machine and pass the local file (or copy that "
        f"machine's cache folder to {folder})"
        if _offline(error)
        else "check the URL, or download the file yourself and pass its local path"
    )
    raise OpenURLError(f"{url}: cannot download ({_why(error)}); {hint}")
