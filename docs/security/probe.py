"""Security probe (issue 14 figures): start `python app.py` from REPO on BUNDLE as a
subprocess and measure, from outside, what a hostile visitor could do.

    python docs/security/probe.py REPO OUT.json [BUNDLE]

Figures: resident memory after 10 ImageEditor accept_blobs requests with a huge
layer index; a 12000 x 12000 PNG brush layer (time, peak memory); another
session's cached decode during a 10-request burst; files left in gradio's cache
after 50 refused uploads, right away and 150 s later."""
import json, os, socket, subprocess, sys, tempfile, time, threading
from pathlib import Path
import httpx, psutil, numpy as np
from gradio_client import Client, handle_file

repo, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
BUNDLE = sys.argv[3] if len(sys.argv) > 3 else str(repo / "assets" / "demo")
WORK = Path(tempfile.mkdtemp(prefix="mindlens-probe-"))

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
cache = WORK / "gradio"; cache.mkdir(parents=True, exist_ok=True)
env = {**os.environ, "GRADIO_TEMP_DIR": str(cache), "PYTHONPATH": str(repo)}
proc = subprocess.Popen([sys.executable, str(repo / "app.py"), "--bundle", BUNDLE, "--port", str(port)], cwd=repo, env=env,
                        stdout=subprocess.DEVNULL, stderr=open(WORK / "app.log", "w"))
url = f"http://127.0.0.1:{port}"
for _ in range(600):
    try:
        if httpx.get(url + "/", timeout=2).status_code == 200: break
    except Exception: pass
    time.sleep(0.5)
p = psutil.Process(proc.pid)
rss = lambda: p.memory_info().rss / 1e6
report = {}
try:
    c = Client(url + "/", verbose=False)
    c.predict(1, 0, api_name="/decode_trial")
    # (a) component server
    cfg = httpx.get(url + "/config").json()
    editor = next(x["id"] for x in cfg["components"] if x.get("props", {}).get("elem_id") == "paint-editor")
    tiny = WORK / "tiny.png"
    from PIL import Image
    Image.new("RGBA", (8, 8)).save(tiny)
    before = rss(); codes = []
    for i in range(10):
        r = httpx.post(url + "/gradio_api/component_server/", data={"component_id": str(editor), "fn_name": "accept_blobs",
                       "session_hash": f"s{i}", "id": f"x{i}", "type": "layer", "index": "28000000"},
                       files={"file": ("layer.png", tiny.read_bytes(), "image/png")}, timeout=120)
        codes.append(r.status_code)
    time.sleep(1)
    report["component_server"] = {"rss_before_mb": round(before), "rss_after_10_mb": round(rss()), "status_codes": sorted(set(codes))}
    # (b) big layer
    big = WORK / "big.png"
    if not big.exists():
        Image.new("L", (12000, 12000)).convert("RGBA").save(big, optimize=True)
    peak = [rss()]; stop = threading.Event()
    def watch():
        while not stop.is_set(): peak.append(rss()); time.sleep(0.05)
    t = threading.Thread(target=watch); t.start()
    t0 = time.perf_counter(); err = None
    try:
        c.predict(1, False, 0, "set", {"background": None, "layers": [handle_file(str(big))], "composite": None}, 1.0, *([0.0] * 8), api_name="/decode_painting")
    except Exception as e: err = str(e)[:200]
    dt = time.perf_counter() - t0; stop.set(); t.join()
    report["big_layer"] = {"file_kb": big.stat().st_size // 1000, "seconds": round(dt, 2), "rss_before_mb": round(peak[0]), "rss_peak_mb": round(max(peak)), "answer": err}
    # (c) burst
    other = Client(url + "/", verbose=False); other.predict(1, 2, api_name="/decode_trial")
    burst = Client(url + "/", verbose=False)
    jobs = [burst.submit(1, 0, True, 3, 0.15, 100 + i, api_name="/decode_trial") for i in range(10)]
    time.sleep(1.0)
    t0 = time.perf_counter(); other.predict(1, 2, api_name="/decode_trial"); wait = time.perf_counter() - t0
    refused = 0
    for j in jobs:
        try: j.result(timeout=600)
        except Exception: refused += 1
    report["burst"] = {"cached_decode_wait_s": round(wait, 2), "burst_refused": refused}
    # (d) cache after a run: 50 refused uploads + what the run made
    for i in range(50):
        f = WORK / f"bad{i}.npy"; np.save(f, np.full(3 + i, 1.0))
        try: c.predict(1, handle_file(str(f)), api_name="/decode_upload")
        except Exception: pass
    files_now = sum(1 for x in cache.rglob("*") if x.is_file())
    time.sleep(150)
    report["cache_files"] = {"right_after": files_now, "after_150_s": sum(1 for x in cache.rglob("*") if x.is_file())}
finally:
    proc.terminate(); proc.wait(30)
out.write_text(json.dumps(report, indent=2)); print(json.dumps(report, indent=2))
