"""What Gradio's own cache clean-up (``delete_cache``) leaves behind.

Gradio 6.31's multipart parser opens a ``NamedTemporaryFile`` in its upload
folder for every uploaded file and moves the content into the cache, which
leaves an empty ``tmpXXXXXXXX`` file per upload that ``delete_cache`` does
not track. :class:`EmptyUploadJanitor` removes those empty files once they
are older than ``age_s``, every ``every_s`` seconds, in a daemon thread.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path


class EmptyUploadJanitor:
    def __init__(self, folder: str | Path, *, every_s: float = 60.0, age_s: float = 60.0):
        self.folder, self.every_s, self.age_s = Path(folder), every_s, age_s
        self._stop = threading.Event()

    def sweep(self) -> int:
        """Remove empty ``tmp*`` files older than ``age_s``; returns how many."""
        removed, now = 0, time.time()
        for f in self.folder.glob("tmp*"):
            try:
                st = f.stat()
                if f.is_file() and st.st_size == 0 and now - st.st_mtime > self.age_s:
                    f.unlink()
                    removed += 1
            except OSError:  # gone already, or not ours to remove
                continue
        return removed

    def start(self) -> "EmptyUploadJanitor":
        def loop():
            while not self._stop.wait(self.every_s):
                self.sweep()

        threading.Thread(target=loop, name="empty-upload-janitor", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
