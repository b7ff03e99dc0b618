"""Hugging Face Space readiness: README front matter and requirements.txt."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_front_matter_names_the_gradio_app():
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    front = text.split("---\n")[1]
    fields = dict(line.split(": ", 1) for line in front.strip().splitlines())
    assert fields["sdk"] == "gradio" and fields["app_file"] == "app.py"
    assert (ROOT / fields["app_file"]).is_file()


def test_requirements_match_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = [l.strip() for l in (ROOT / "requirements.txt").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert sorted(reqs) == sorted(deps)


def test_readme_links_stay_inside_the_repository():
    """Users have only the repository: every relative link in the README
    resolves to a file in it."""
    import re

    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"`(\.\./[^`]+)`", text)
    relative = [l for l in links if not l.startswith(("http://", "https://", "#"))]
    assert relative, "the README links its own docs"
    outside = [l for l in relative if l.startswith("..") or not (ROOT / l.split("#")[0]).resolve().is_relative_to(ROOT)]
    missing = [l for l in relative if l not in outside and not (ROOT / l.split("#")[0]).exists()]
    assert not outside and not missing, (outside, missing)
