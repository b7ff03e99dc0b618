"""The explorer as a hostile visitor to a public Space would try it, on
loopback: every finding of the security review, reproduced against the
running app, with the fix asserted (see docs/security.md)."""

import logging
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

gradio = pytest.importorskip("gradio")
import httpx  # noqa: E402
import psutil  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402


INJECTION = ('<a href="http://127.0.0.1:9/login">Session expired, click here to sign in</a>'
             '<img src="http://127.0.0.1:9/track.png"><form action="http://127.0.0.1:9/"><input name=pw></form>')


@pytest.fixture(scope="module")
def server(app_url):
    return app_url  # the session's app (conftest.py): its cache is cleaned every 2 s of files older than 15 s


def _client(url: str) -> Client:
    return Client(url + "/", verbose=False)


def _error(fn) -> str:
    with pytest.raises(Exception) as e:
        fn()
    return str(e.value)


def test_error_messages_never_echo_markup_or_huge_values(server):
    c = _client(server)
    for value in (INJECTION, "9" * 5000):
        text = _error(lambda: c.predict(1, value, api_name="/decode_trial"))
        assert "<a " not in text and "<img" not in text and "<form" not in text and len(text) < 600, text[:300]
        assert "/tmp/" not in text and "Expected a" not in text, text[:300]  # no server paths, no pydantic text


def test_component_server_route_is_closed_and_memory_stays_flat(server):
    config = httpx.get(f"{server}/config").json()
    editor = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "paint-editor")
    png = _png_header(8, 8)
    proc = psutil.Process()
    before = proc.memory_info().rss
    for i in range(10):
        r = httpx.post(f"{server}/gradio_api/component_server/",  # the multipart form the editor's own upload sends
                       data={"component_id": str(editor), "fn_name": "accept_blobs", "session_hash": f"s{i}", "id": f"x{i}",
                             "type": "layer", "index": "100000000"},
                       files={"file": ("layer.png", png, "image/png")}, timeout=30)
        assert r.status_code == 404 and "Function not found" in r.text, r.text[:300]
    grown_mb = (proc.memory_info().rss - before) / 1e6
    assert grown_mb < 50, f"resident memory grew by {grown_mb:.0f} MB over 10 requests"


def test_a_huge_brush_layer_is_refused_before_it_is_decoded(server, tmp_path):
    big = tmp_path / "layer.png"
    big.write_bytes(_png_header(12_000, 12_000))  # 12000 x 12000: 576 MB once decoded
    value = {"background": None, "layers": [handle_file(str(big))], "composite": None}
    t0 = time.perf_counter()
    text = _error(lambda: _client(server).predict(1, False, 0, "set", value, 1.0, *([0.0] * 8), api_name="/decode_painting"))
    assert time.perf_counter() - t0 < 10
    assert "larger than the canvas" in text, text


def test_one_visitors_burst_neither_blocks_a_cached_decode_nor_fills_the_queue(server):
    other = _client(server)
    other.predict(1, 2, api_name="/decode_trial")  # now cached for everyone
    burst = _client(server)
    jobs = [burst.submit(1, 0, True, 3, 0.15, 100 + i, api_name="/decode_trial") for i in range(10)]  # 10 uncached seeds
    time.sleep(1.0)
    t0 = time.perf_counter()
    other.predict(1, 2, api_name="/decode_trial")
    waited = time.perf_counter() - t0
    refused = 0
    for job in jobs:
        try:
            job.result(timeout=300)
        except Exception as e:  # noqa: BLE001
            assert "at most 2 at a time per visitor" in str(e), str(e)
            refused += 1
    assert waited < 8.0, f"a cached decode waited {waited:.1f} s behind another visitor's burst (20 s before the fix)"
    assert refused >= 7, f"only {refused} of 10 burst requests were refused"


def _upload(url: str, path: Path) -> str:
    r = httpx.post(f"{url}/gradio_api/upload", files={"files": (path.name, path.read_bytes())}, timeout=30)
    r.raise_for_status()
    return r.json()[0]


def test_one_visitor_cannot_delete_anothers_upload(server, app_explorer, tmp_path):
    n = app_explorer.bundle.subject(1).n_voxels
    f = tmp_path / "mine.npy"
    np.save(f, np.random.default_rng(1).normal(size=n).astype(np.float32))
    pending = _upload(server, f)  # the victim's upload, not yet decoded
    payload = {"path": pending, "meta": {"_type": "gradio.FileData"}, "orig_name": "mine.npy"}
    _client(server).predict(1, payload, api_name="/decode_upload")  # the attacker decodes the same path
    assert Path(pending).exists()
    out = _client(server).predict(1, payload, api_name="/decode_upload")  # the victim's own decode still works
    assert "no seen image" in out[5]


def test_refused_uploads_do_not_stay_in_the_cache(server, tmp_path):
    paths = []
    for i in range(50):
        f = tmp_path / f"bad{i}.npy"
        np.save(f, np.full(3 + i, 1.0))  # wrong length: refused
        paths.append(_upload(server, f))
        payload = {"path": paths[-1], "meta": {"_type": "gradio.FileData"}, "orig_name": f.name}
        if i < 5:
            assert "voxels" in _error(lambda: _client(server).predict(1, payload, api_name="/decode_upload"))
    deadline = time.time() + 40
    while time.time() < deadline and any(Path(p).exists() for p in paths):
        time.sleep(0.5)
    left = [p for p in paths if Path(p).exists()]
    assert not left, f"{len(left)} of 50 refused uploads are still on disk"


def test_the_janitor_removes_the_empty_files_gradio_leaves_per_upload(tmp_path):
    from ui.janitor import EmptyUploadJanitor

    (tmp_path / "tmpold").touch()
    (tmp_path / "tmpfull").write_text("data")
    (tmp_path / "keep.png").touch()
    janitor = EmptyUploadJanitor(tmp_path, age_s=-1)
    assert janitor.sweep() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png", "tmpfull"]


@pytest.mark.parametrize("args, message", [
    ((1, 1.5), "trial: expected a whole number"),
    ((True, 0), "subject: expected one of"),
    ((1, 0, True, 3, 0.15, 2**64), "maximum value 2147483647"),  # the seed (gradio's own bound, or ours)
    ((1, 0, True, 10**6, 0.15, 0), "maximum value 20"),  # top_k
    ((1, 0, True, 3, 2.0, 0), "maximum value 1"),  # alpha
    ((1, 0, True, 3, 0.15, 7.5), "seed: expected a whole number"),
])
def test_parameters_are_whole_and_capped(server, args, message):
    text = _error(lambda: _client(server).predict(*args, api_name="/decode_trial"))
    assert message in text and "Overflow" not in text and "Traceback" not in text, text


def test_a_refused_input_is_one_log_line_without_a_traceback(server, caplog):
    caplog.set_level(logging.INFO, logger="mindlens.app")
    _error(lambda: _client(server).predict(1, 1.5, api_name="/decode_trial"))
    refused = [r for r in caplog.records if r.name == "mindlens.app" and "refused" in r.getMessage()]
    assert len(refused) == 1 and not refused[0].exc_info and "whole number" in refused[0].getMessage()


def test_bad_files_get_messages_about_the_input(server, tmp_path):
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros(0))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("1,2,\xe9".encode("latin-1"))
    for f, message in ((empty, "empty"), (latin, "not UTF-8")):
        text = _error(lambda: _client(server).predict(1, handle_file(str(f)), api_name="/decode_upload"))
        assert message in text and "/tmp/" not in text and "codec" not in text, text


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares its size in the header and holds a tiny (wrong)
    image: enough for anything that reads the header first."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
