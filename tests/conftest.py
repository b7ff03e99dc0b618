"""Shared fixtures: one smoke cohort per test session (real build, ~20 s)."""

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MINDLENS_CACHE", tempfile.mkdtemp(prefix="mindlens-test-cache-"))  # the explorer's per-bundle cache


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory):
    from decoder import build_cohort, load_preset

    out = tmp_path_factory.mktemp("cohorts") / "smoke"
    build_cohort(load_preset("smoke"), out, progress=False)
    return out


@pytest.fixture(scope="session")
def smoke(smoke_dir):
    from decoder import load_cohort

    return load_cohort(smoke_dir)


@pytest.fixture(scope="session")
def smoke_build(smoke_dir, tmp_path_factory):
    """``decoder build-demo --preset smoke`` on the session's cohort (about 2
    minutes): (bundle dir, work dir). The app tests use this bundle too.
    For local iteration only, MINDLENS_SMOKE_BUILD=DIR reuses a build made
    earlier by this fixture (DIR holds bundle/ and work/); CI never sets it."""
    from decoder.commands import main

    reuse = os.environ.get("MINDLENS_SMOKE_BUILD")
    if reuse:
        return Path(reuse) / "bundle", Path(reuse) / "work"

    root = tmp_path_factory.mktemp("smoke-build")
    work = root / "work"
    work.mkdir()
    (work / "cohort").symlink_to(smoke_dir)  # the stage is skipped when its output exists
    out = root / "bundle"
    assert main(["build-demo", "--preset", "smoke", "--out", str(out), "--work", str(work), "--quiet"]) == 0
    return out, work


@pytest.fixture(scope="session")
def nsd_mindeye2(smoke_dir, tmp_path_factory):
    """The smoke cohort exported in MindEye2's layout (64-px images), through the command."""
    from decoder.commands import main

    out = tmp_path_factory.mktemp("nsd") / "mindeye2"
    assert main(["cohort", "export", str(smoke_dir), "--format", "mindeye2", "--image-size", "64", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def app_explorer(smoke_build):
    """One Explorer over the smoke bundle, shared by the app's test modules."""
    from decoder import load_bundle
    from ui import Explorer

    return Explorer(load_bundle(smoke_build[0]))


@pytest.fixture(scope="session")
def app_url(app_explorer):
    """``python app.py`` in-process on loopback, shared by the API, browser
    and security tests. Gradio's cache is cleaned every 2 s of files older
    than 15 s (the app's default: every minute), so the security tests can
    watch uploads disappear."""
    import app as app_module
    from ui import build_demo

    demo = build_demo(app_explorer, delete_cache=(2, 15))
    _, url, _ = app_module.launch(demo, "127.0.0.1", None, prevent_thread_lock=True, quiet=True)
    yield url.rstrip("/")
    demo.close()
