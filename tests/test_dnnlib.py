"""dnnlib: EasyDict and open_url (local paths, file://, http(s):// through a cache, one-line errors offline)."""

from __future__ import annotations

import hashlib
import io
import os
import time

import pytest

import dnnlib
from dnnlib import util
from tests.conftest import free_port


def test_easydict_keys_are_attributes():
    d = dnnlib.EasyDict(a=1)
    d.b = 2
    assert d == {"a": 1, "b": 2} and d.a == 1 and isinstance(d, dict)
    del d.a
    assert "a" not in d
    with pytest.raises(AttributeError):
        d.missing
    with pytest.raises(AttributeError):
        del d.missing


def test_open_url_local_paths_and_file_urls(tmp_path):
    path = tmp_path / "a b.bin"
    path.write_bytes(b"payload")
    with util.open_url(str(path)) as f:
        assert f.read() == b"payload"
    url = "file://" + str(path).replace(" ", "%20")
    with util.open_url(url) as f:
        assert f.read() == b"payload"
    assert util.open_url(url, return_filename=True) == str(path)
    assert util.open_url("file://localhost" + str(path).replace(" ", "%20"), return_filename=True) == str(path)
    with pytest.raises(FileNotFoundError, match="missing.pkl: not found"):
        util.open_url(str(tmp_path / "missing.pkl"))
    with pytest.raises(FileNotFoundError, match="a folder"):
        util.open_url(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such file"):
        util.open_url(f"file://{tmp_path}/missing.pkl")
    with pytest.raises(util.OpenURLError, match="not host 'example.org'"):
        util.open_url("file://example.org/x.pkl")
    with pytest.raises(util.OpenURLError, match="unsupported URL scheme 'ftp'"):
        util.open_url("ftp://example.org/x.pkl")
    assert util.is_url("https://x/y") and util.is_url("file:///x") and not util.is_url("file:///x", False)
    assert not util.is_url("/abs/path") and not util.is_url("C:\\x")


def test_http_downloads_once_into_the_cache_with_a_progress_bar(http_folder, tmp_path, capsys):
    folder, base, requests = http_folder
    data = os.urandom(3 << 20)  # several read chunks
    (folder / "net.pkl").write_bytes(data)
    url = f"{base}/net.pkl"
    with util.open_url(url) as f:
        assert f.read() == data
    assert "net.pkl" in capsys.readouterr().err  # tqdm's bar names the file on stderr
    cached = util.open_url(url, return_filename=True)
    assert open(cached, "rb").read() == data and requests == ["/net.pkl"]  # the second open hit the cache
    md5 = hashlib.md5(url.encode()).hexdigest()
    assert os.path.basename(cached) == f"{md5}_net.pkl"  # EDM's naming: EDM's cache and ours are one
    assert os.path.dirname(cached) == str(tmp_path / "dnnlib-cache" / "downloads")
    buffer = util.open_url(url, cache=False, verbose=False)
    assert isinstance(buffer, io.BytesIO) and buffer.read() == data and len(requests) == 2


def test_a_file_in_edms_cache_is_used_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path))
    url = f"http://127.0.0.1:{free_port()}/edm-cifar10-32x32-cond-vp.pkl"  # nothing listens there
    (tmp_path / "downloads").mkdir()
    edm_copy = tmp_path / "downloads" / f"{hashlib.md5(url.encode()).hexdigest()}_edm-cifar10-32x32-cond-vp.pkl"
    edm_copy.write_bytes(b"cached by EDM")
    with util.open_url(url) as f:
        assert f.read() == b"cached by EDM"


def test_failures_are_one_line_and_leave_no_file(http_folder, tmp_path):
    folder, base, _ = http_folder
    with pytest.raises(util.OpenURLError) as e:
        util.open_url(f"{base}/absent.pkl")
    assert "HTTP 404" in str(e.value) and "\n" not in str(e.value) and "absent.pkl" in str(e.value)
    offline = f"http://127.0.0.1:{free_port()}/net.pkl"
    start = time.time()
    with pytest.raises(util.OpenURLError) as e:
        util.open_url(offline)
    assert time.time() - start < 5  # refused at once: no retries without a network
    message = str(e.value)
    assert message.startswith(f"{offline}: cannot download") and "no network connection?" in message
    assert "\n" not in message
    assert os.listdir(tmp_path / "dnnlib-cache" / "downloads") == []  # nothing half-written, not even a temporary
