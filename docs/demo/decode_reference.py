"""Decode five fixed trials of a bundle and save every picture and caption,
to check that a refactor keeps the pictures bit for bit:

    python docs/demo/decode_reference.py assets/demo before.npz   # on the old commit
    python docs/demo/decode_reference.py assets/demo after.npz    # on the new one
    python docs/demo/decode_reference.py --compare before.npz after.npz
"""

import sys

import numpy as np

CASES = [(1, 0, {}), (2, 17, {}), (8, 3, {}), (3, 5, {"use_ecphory": False}), (1, 4, {"gate_subject": 2})]


def decode(bundle_dir: str, out: str) -> None:
    from decoder import load_bundle

    rec = load_bundle(bundle_dir).reconstructor()
    arrays = {}
    for sid, trial, overrides in CASES:
        r = rec.decode(sid, trial=trial, **overrides)
        for name in ("unrefined", "refined", "blurry", "final"):
            arrays[f"s{sid}_t{trial}_{name}"] = getattr(r, name)
        arrays[f"s{sid}_t{trial}_caption"] = np.array(r.caption)
    np.savez_compressed(out, **arrays)


def compare(a: str, b: str) -> int:
    x, y = np.load(a), np.load(b)
    same = [k for k in x.files if np.array_equal(x[k], y[k])]
    print(f"{len(same)} of {len(x.files)} arrays identical")
    return 0 if len(same) == len(x.files) else 1


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    decode(sys.argv[1], sys.argv[2])
