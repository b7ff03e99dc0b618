"""``python -m ui.bench``: the explorer's budgets, measured
from the outside like a user: the app runs as its own process
(``python app.py``), and requests go through ``gradio_client``.

* ``startup_s``: from spawning the process until ``GET /`` answers;
* ``first_picture_p50_s``: ``/decode_trial`` streams; until its first
  instalment (the seen image, the blurry picture and the flat map) is on
  the client, on trials nobody decoded before;
* ``decode_p50_s``: the same decodes, until every panel is on the client;
* ``decode_cached_s``: the same trial again (median), every picture
  downloaded by ``gradio_client`` (one after another);
* ``decode_cached_browser_s``: the same, with the pictures fetched six at a
  time over kept-alive connections, as a browser does;
* ``paint_first_picture_p50_s`` / ``paint_p50_s``: ROI presets (painted
  voxels are never cached), first instalment / whole answer;
* ``umap_update_s``: ``/umap_view`` (median);
* ``rss_mb``: the app's resident memory after everything above; the
  largest of its samples twice a second during the load test
  (``rss_peak_mb``), and after it (``rss_end_mb``);
* load: ``users`` concurrent clients x ``requests`` each, cycling through
  decode a new trial, update the UMAP, decode it again, paint a preset;
  ``load_errors`` and ``load_p95_s`` (per-request latency).

It lives in ``ui/`` because it drives the app; the library (``decoder/``)
never imports it. ``python -m ui.bench --bundle DIR [--users 8] [--requests 20]
[--repeats 5] [--json]``.
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

PRESETS = ("faces", "places", "bodies", "words")
VIEW = "Fig. 10: seen images vs brain embeddings"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the app did not answer at {url} within {timeout:.0f} s")


def _rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def _subjects_and_trials(bundle: Path) -> tuple[list[int], int]:
    from safetensors import safe_open

    files = sorted((bundle / "subjects").glob("subj*.safetensors"))
    if not files:
        raise ValueError(f"bundle: {str(bundle)!r} has no subjects/ (the app benchmark needs a local bundle)")
    with safe_open(str(files[0]), "pt") as f:
        n_trials = f.get_slice("test_image_ids").get_shape()[0]
    return [int(f.stem[4:]) for f in files], int(n_trials)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _streamed(client, *args, api_name: str) -> tuple[float, float]:
    """(seconds until the first instalment is on the client, seconds until
    the whole answer is), for a streaming endpoint; image files included."""
    t = time.perf_counter()
    job = client.submit(*args, api_name=api_name)
    first = None
    for _ in job:  # one iteration per instalment, as it arrives
        first = first if first is not None else time.perf_counter() - t
    job.result()
    done = time.perf_counter() - t
    return (first if first is not None else done), done


APP_FILE = Path(__file__).resolve().parents[1] / "app.py"


def bench_app(bundle: str | os.PathLike, *, app_file: str | os.PathLike = APP_FILE, repeats: int = 5, users: int = 8,
              requests: int = 20, seed: int = 0, app_log: str | os.PathLike | None = None) -> dict:
    import httpx
    from gradio_client import Client

    bundle = Path(bundle).resolve()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    t0 = time.perf_counter()
    log = open(app_log, "w") if app_log else subprocess.DEVNULL  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([sys.executable, str(app_file), "--bundle", str(bundle), "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=Path(app_file).resolve().parent)
    try:
        _wait_until_up(url, proc)
        startup = time.perf_counter() - t0
        client = Client(url, verbose=False)
        rng = random.Random(seed)
        subjects, n_trials = _subjects_and_trials(Path(bundle))
        trials = rng.sample(range(n_trials), repeats + 1)
        sid = 1
        client.predict(sid, trials[-1], api_name="/decode_trial")  # warm-up
        decode = [_streamed(client, sid, t, api_name="/decode_trial") for t in trials[:repeats]]
        cached = [_timed(lambda: client.predict(sid, trials[0], api_name="/decode_trial")) for _ in range(repeats)]
        with httpx.Client() as http:
            urls_only = Client(url, verbose=False, download_files=False)
            cached_browser = [_like_a_browser(urls_only, http, sid, trials[0], api_name="/decode_trial") for _ in range(repeats)]
        paint = [_streamed(client, sid, api_name=f"/preset_{g}") for g in PRESETS]
        umap = [_timed(lambda: client.predict(sid, VIEW, False, None, api_name="/umap_view")) for _ in range(repeats)]
        rss = _rss_mb(proc.pid)
        peak, done = [rss], threading.Event()

        def sample():  # the resident size twice a second while the load test runs
            while not done.wait(0.5):
                peak.append(_rss_mb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        load = _load(url, users, requests, n_trials, subjects, seed)
        done.set()
        sampler.join()
        return {
            "startup_s": round(startup, 2), "first_picture_p50_s": _median(decode, 0), "decode_p50_s": _median(decode, 1),
            "decode_cached_s": round(statistics.median(cached), 4),
            "decode_cached_browser_s": round(statistics.median(cached_browser), 4), "paint_first_picture_p50_s": _median(paint, 0),
            "paint_p50_s": _median(paint, 1),
            "umap_update_s": round(statistics.median(umap), 4), "rss_mb": round(rss, 1), "rss_peak_mb": round(max(peak), 1),
            "rss_end_mb": round(_rss_mb(proc.pid), 1),
            **load, "repeats": repeats, "note": "client-side wall times over HTTP, including image transfer",
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if app_log:
            log.close()


def _file_urls(value) -> list[str]:
    """Every file URL in an answer of a ``download_files=False`` client."""
    if isinstance(value, dict):
        own = [value["url"]] if isinstance(value.get("url"), str) else []
        return own + [u for v in value.values() for u in _file_urls(v)]
    if isinstance(value, (list, tuple)):
        return [u for v in value for u in _file_urls(v)]
    return []


def _like_a_browser(client, http, *args, api_name: str) -> float:
    """Seconds until the answer and all its pictures are here, fetched the
    way a browser fetches them: six at a time over kept-alive connections."""
    from concurrent.futures import ThreadPoolExecutor

    t = time.perf_counter()
    urls = _file_urls(client.predict(*args, api_name=api_name))
    with ThreadPoolExecutor(6) as pool:
        for r in pool.map(http.get, urls):
            r.raise_for_status()
    return time.perf_counter() - t


def _median(pairs: list[tuple[float, float]], which: int) -> float:
    return round(statistics.median(p[which] for p in pairs), 3)


def _load(url: str, users: int, requests: int, n_trials: int, subjects: list[int], seed: int) -> dict:
    from gradio_client import Client

    latencies, errors, lock = [], [], threading.Lock()

    def user(u: int):
        rng = random.Random(seed * 1000 + u)
        client = Client(url, verbose=False)
        sid, trial = rng.choice(subjects), rng.randrange(n_trials)
        for i in range(requests):
            step = i % 4
            if step == 0:
                sid, trial = rng.choice(subjects), rng.randrange(n_trials)
            call = [lambda: client.predict(sid, trial, api_name="/decode_trial"),
                    lambda: client.predict(sid, VIEW, False, None, api_name="/umap_view"),
                    lambda: client.predict(sid, trial, api_name="/decode_trial"),
                    lambda: client.predict(sid, api_name=f"/preset_{rng.choice(PRESETS)}")][step]
            t = time.perf_counter()
            try:
                call()
                with lock:
                    latencies.append(time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(f"{type(e).__name__}: {str(e)[:120]}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=user, args=(u,)) for u in range(users)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lat = sorted(latencies)
    return {"load_users": users, "load_requests": users * requests, "load_errors": len(errors), "load_error_examples": errors[:3],
            "load_p50_s": round(lat[len(lat) // 2], 3) if lat else None,
            "load_p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3) if lat else None,
            "load_wall_s": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m ui.bench", description="the explorer's budgets, measured over HTTP")
    p.add_argument("--bundle", type=Path, default=Path("assets/demo"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--users", type=int, default=8, help="concurrent users in the load test")
    p.add_argument("--requests", type=int, default=20, help="requests per user")
    p.add_argument("--json", action="store_true", help="print JSON (default: a table)")
    p.add_argument("--app-log", type=Path, help="write the app's own log here (its errors, if the load test had any)")
    args = p.parse_args(argv)
    report = {"app": bench_app(args.bundle, repeats=args.repeats, users=args.users, requests=args.requests, app_log=args.app_log)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for k, v in report["app"].items():
            print(f"{k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
