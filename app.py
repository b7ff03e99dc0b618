"""MindLens explorer: ``python app.py [--bundle PATH|HUB_ID] [--host 127.0.0.1] [--port 7860]``.

Starts the Gradio explorer on the bundled SimNSD demo (``assets/demo``),
offline, on a CPU. On a Hugging Face Space (``SPACE_ID`` is set) it binds
0.0.0.0, as Spaces require; anywhere else it binds 127.0.0.1 unless told
otherwise.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_BUNDLE = ROOT / "assets" / "demo"
MAX_UPLOAD = "2mb"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="The MindLens explorer (Gradio).")
    p.add_argument("--bundle", default=os.environ.get("MINDLENS_BUNDLE", str(DEFAULT_BUNDLE)),
                   help="a bundle directory, or a Hugging Face Hub repo id (owner/name) holding one")
    p.add_argument("--host", default="0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    return p.parse_args(argv)


def resolve_bundle(spec: str) -> Path:
    """A local directory, else a Hub repo id downloaded with huggingface_hub."""
    path = Path(spec)
    if path.exists() or "/" not in spec or spec.startswith((".", "/")):
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=spec, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))


def create_app(bundle_spec: str, *, models: str = "now"):
    """Load the bundle and build the Blocks (no launch): (demo, explorer).
    ``models="later"``: the page is built from the bundle's light parts, and
    the models load when :meth:`decoder.Bundle.start_loading_models` is
    called (``main`` does, once the page is served) or a decode needs them."""
    from decoder import load_bundle
    from ui import Explorer, build_demo

    explorer = Explorer(load_bundle(resolve_bundle(bundle_spec), models=models))
    return build_demo(explorer), explorer


def launch(demo, host: str, port: int, **kwargs):
    from gradio.utils import get_upload_folder

    from ui import CSS, THEME
    from ui.app import CACHE_CLEANUP
    from ui.janitor import EmptyUploadJanitor

    every, age = demo.delete_cache or CACHE_CLEANUP
    EmptyUploadJanitor(get_upload_folder(), every_s=every, age_s=age).start()

    return demo.launch(server_name=host, server_port=port, theme=THEME, css=CSS, max_file_size=MAX_UPLOAD, show_error=False,
                       allowed_paths=[], footer_links=["api"], **kwargs)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8
    per core), and memory freed in one is not returned to the others: with
    sixteen queue workers passing images around, the resident size grows by
    hundreds of MB under load. Two arenas keep it flat (glibc only; no-op
    elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # -8: M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def main(argv=None) -> int:
    limit_malloc_arenas()
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from decoder import BundleError

    try:
        demo, explorer = create_app(args.bundle, models="later")
    except (BundleError, FileNotFoundError, ValueError) as e:
        print(f"mindlens: cannot start: {e}", file=sys.stderr)
        return 2
    launch(demo, args.host, args.port, prevent_thread_lock=True)  # the page is served from here on
    explorer.bundle.start_loading_models()  # then the models, while the first visitor reads the page
    threading.Thread(target=warm_up, args=(explorer,), name="warm-up", daemon=True).start()
    demo.block_thread()
    return 0


def warm_up(explorer) -> None:
    """Precompute what the first visitor would wait for; a bundle whose
    models fail to load is reported here, and each decode then says so."""
    try:
        explorer.warm_up()
    except Exception:  # noqa: BLE001 - logged for the operator
        logging.getLogger("mindlens.app").exception("the models did not load")


if __name__ == "__main__":
    sys.exit(main())
