"""Export a SimNSD cohort in both NSD layouts, read each back, and report
times, sizes and the reader's peak memory (what docs/nsd.md quotes).

    python docs/nsd/measure_export.py data/demo OUTDIR [--image-size 224] [--read-only]

Each read runs in a fresh process (so its peak RSS is its own): it opens
the export, then streams every subject's betas through in 750-row blocks,
as training on real NSD would, and reports its peak resident memory
(VmHWM) next to the size of the betas on disk. ``--read-only`` skips the
export (reads an earlier one).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

READ = """
def peak_mb():  # VmHWM: this process's own peak (ru_maxrss would include the parent's, kept across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
import json, sys, time
import numpy as np
from decoder.data import load_cohort
t0 = time.perf_counter()
nsd = load_cohort("nsd:" + sys.argv[1])
opened = time.perf_counter() - t0
total, rows = 0.0, 0
for sid in nsd.subject_ids:
    s = nsd.subject(sid)
    for start in range(0, s.n_trials, 750):
        block = s.betas(np.arange(start, min(start + 750, s.n_trials)))
        total += float(block.sum()); rows += len(block)
print(json.dumps({"open_seconds": round(opened, 2), "stream_seconds": round(time.perf_counter() - t0 - opened, 1),
                  "rows": rows, "peak_rss_mb": peak_mb()}))
"""


def size_mb(path: Path, pattern: str = "*") -> float:
    return round(sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file()) / 1e6, 1)


def main(cohort: str, out: str, image_size: int | None, read_only: bool = False) -> dict:
    from decoder.data import load_cohort
    from decoder.data.nsd.export import export_cohort

    source = load_cohort(cohort, verify=False)
    report = {"cohort": cohort, "subjects": len(source.subject_ids), "images": int(len(source.image_ids))}
    for layout in ("mindeye2", "nsd-fsaverage"):
        target = Path(out) / layout
        t0 = time.perf_counter()
        if not read_only:
            export_cohort(source, target, layout=layout, image_size=image_size if layout == "mindeye2" else None, overwrite=True)
        seconds = time.perf_counter() - t0
        betas = "betas_all_*.hdf5" if layout == "mindeye2" else "*.mgh"
        read = subprocess.run([sys.executable, "-c", READ, str(target)], capture_output=True, text=True, check=True)
        report[layout] = {"export_seconds": round(seconds, 1), "size_mb": size_mb(target), "betas_mb": size_mb(target, betas),
                          **json.loads(read.stdout.strip().splitlines()[-1])}
    return report


if __name__ == "__main__":
    size = int(sys.argv[sys.argv.index("--image-size") + 1]) if "--image-size" in sys.argv else None
    print(json.dumps(main(sys.argv[1], sys.argv[2], size, read_only="--read-only" in sys.argv), indent=2))
