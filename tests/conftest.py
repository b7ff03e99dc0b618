"""Shared fixtures: one smoke cohort per test session (real build, ~20 s)."""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


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
