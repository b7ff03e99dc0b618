"""A bundle built from an exported cohort (``decoder train`` then
``decoder build-bundle`` on nsd:PATH) opens in the explorer: volume-only
subjects (MindEye2's layout) get a region bar chart instead of the flat map
and clear refusals for the brush and V1 quadrants. (Subjects with vertices
get the flat map: the SimNSD app tests; the fsaverage reader gives back the
vertices: tests/test_nsd.py.)"""

import json

import numpy as np
import pytest

from decoder.commands import main


@pytest.fixture(scope="module")
def nsd_bundles(nsd_mindeye2, smoke_build, tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd-bundles")
    foundation = str(smoke_build[1] / "foundation")
    assert main(["train", "--cohort", f"nsd:{nsd_mindeye2}", "--foundation", foundation, "--preset", "tiny", "--steps", "4",
                 "--per-subject", "8", "--out", str(root / "decoder"), "--quiet"]) == 0
    assert main(["build-bundle", "--cohort", f"nsd:{nsd_mindeye2}", "--decoder", str(root / "decoder"), "--foundation", foundation,
                 "--out", str(root / "bundle"), "--eval-limit", "2", "--quiet"]) == 0
    return {"volume": root / "bundle"}


def test_volume_only_bundle_opens_with_region_bars(nsd_bundles):
    from decoder import load_bundle
    from ui import Explorer, build_demo

    bundle = load_bundle(nsd_bundles["volume"])
    assert bundle.stimuli.spec()["kind"] == "nsd" and not bundle.subject(1).has_surface
    report = json.loads((nsd_bundles["volume"] / "manifest.json").read_text())["report"]
    assert report["subjects"]["1"]["n_images"] == 2 and "brain_correlation" not in report["subjects"]["1"]  # no encoding model in NSD

    explorer = Explorer(bundle)
    assert not explorer.has_surface(1)
    rec = explorer.decode_trial(1, 0)
    assert rec.final.shape[-1] == 3 and rec.caption
    bars = explorer.activity_map(1, rec.voxels)
    assert bars.shape == (explorer.raster.height, explorer.raster.width, 3) and bars.std() > 0
    voxels, _ = explorer.pattern(1, {"faces": 2.0})
    assert voxels[bundle.subject(1).roi > 0].any()
    with pytest.raises(ValueError, match="volume-only"):
        explorer.pattern(1, {"upper-left": 1.0})
    with pytest.raises(ValueError, match="volume-only"):
        explorer.pattern(1, {}, painted_alpha=np.full((explorer.raster.height, explorer.raster.width), 255, np.uint8))
    demo = build_demo(explorer)  # every tab builds for a bundle without a flat map
    assert demo is not None
