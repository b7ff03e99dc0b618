"""Decode-setting ablations with the stage attribution, on *validation* data.

Every configuration runs the one pipeline through ``evaluate_bundle(...,
split="validation")``: the added subject's later sessions, which the
decoder never trained on and Ecphory never keeps as memories (never the
test set). Each line of CONFIGS is a name and ``NAME=VALUE`` overrides of the
bundle's decode settings (as ``decoder evaluate --decode`` takes them).

    python docs/demo/ablate_decode.py BUNDLE COHORT JUDGE OUT.json [N_IMAGES] [CONFIGS_FILE] [GENERATOR]

GENERATOR (a saved mini generator pipeline) replaces the bundle's
token -> image generator, to test another generator behind the same trained
decoder. The low-level head's blurry latent is still decoded by the bundle's
own autoencoder (the head was trained against it), and the refiner keeps the
bundle's generator.

Writes OUT.json (every configuration's attribution) and OUT.md (a table of
the rows that change with the decode settings).
"""

import json
import sys
from pathlib import Path

from decoder import load_bundle
from decoder.commands._args import decode_overrides
from decoder.data.cohort import load_cohort
from decoder.evaluate import evaluate_bundle
from decoder.foundation.backends import load_generator
from decoder.metrics.judge import load_judge

DEFAULT_CONFIGS = """\
defaults
no-ecphory use_ecphory=false
blurry-start-0.85 generator_strength=0.85
blurry-start-0.7 generator_strength=0.7
dual-text-0.5 mix=0.5
guidance-1.5 guidance_scale=1.5
guidance-5 guidance_scale=5
alpha-0.5 alpha=0.5
"""
ROWS = ("no_ecphory", "ecphory", "final", "memory")
COLUMNS = ("judge_category_accuracy", "judge_domain_accuracy", "judge_two_way", "clip_two_way", "clip_category_accuracy",
           "quadrant_accuracy", "colour_accuracy", "pixcorr", "ssim")


def parse(text: str) -> list[tuple[str, dict]]:
    out = []
    for line in (ln.strip() for ln in text.splitlines()):
        if line and not line.startswith("#"):
            name, _, rest = line.partition(" ")
            out.append((name, decode_overrides(",".join(rest.split())) if rest.strip() else {}))
    return out


class SwappedGenerator:
    """Another generator for the tokens; the bundle's own for the blurry latent."""

    def __init__(self, generator, bundle_generator):
        self.generator, self.bundle_generator = generator, bundle_generator

    def __call__(self, *args, **kwargs):
        return self.generator(*args, **kwargs)

    def decode_latents(self, latents):
        return self.bundle_generator.decode_latents(latents)

    def __getattr__(self, name):
        return getattr(self.generator, name)


def main(bundle_dir, cohort_dir, judge_dir, out, n_images="60", configs_file=None, generator=None):
    bundle, cohort, judge = load_bundle(bundle_dir), load_cohort(cohort_dir, verify=False), load_judge(judge_dir)
    if generator:
        bundle.generator = SwappedGenerator(load_generator("mini", generator), bundle.generator)
    configs = parse(Path(configs_file).read_text() if configs_file else DEFAULT_CONFIGS)
    sid = bundle.settings["new_subject"]["subject"]
    results = json.loads(Path(out).read_text()) if Path(out).is_file() else {}
    for name, decode in configs:
        if name in results:
            continue  # resumable: finished configurations are kept
        report = evaluate_bundle(bundle, cohort, [sid], limit=int(n_images), judge=judge, split="validation", decode=decode,
                                 progress=False)
        results[name] = {"decode": decode, "settings": report["settings"], "attribution": report["attribution"],
                         "tokens": report.get("attribution_tokens"), "n_images": report["subjects"][str(sid)]["n_images"]}
        Path(out).write_text(json.dumps(results, indent=2))
        print(name, json.dumps({r: round(results[name]["attribution"][r]["judge_category_accuracy"], 3) for r in ROWS}), flush=True)
    swapped = f", generator `{generator}`" if generator else ""
    lines = [f"Validation: subject {sid}'s later sessions, {n_images} images; bundle `{bundle_dir}`{swapped}.", ""]
    for row in ("final", "ecphory", "no_ecphory"):
        lines += [f"**{row}**", "", "| config | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        for name, r in results.items():
            lines.append(f"| {name} | " + " | ".join(f"{r['attribution'][row].get(c, float('nan')):.3f}" for c in COLUMNS) + " |")
        lines.append("")
    lines += ["**memory** (the top-1 memory's own image; judge_two_way): "
              + ", ".join(f"{n} {r['attribution']['memory']['judge_two_way']:.3f}" for n, r in results.items()), ""]
    Path(out).with_suffix(".md").write_text("\n".join(lines))


if __name__ == "__main__":
    main(*sys.argv[1:])
