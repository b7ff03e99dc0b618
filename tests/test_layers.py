"""The library's layers are enforced, not only documented:

* ``decoder/`` imports neither the explorer (``ui``) nor gradio: every
  module imports in a fresh interpreter where both are unimportable, and
  no file under ``decoder/`` names ``ui`` or ``gradio``;
* the lower layers (``models``, ``data``, ``foundation``) import only the
  base helpers (``decoder._*``, ``decoder.paths``) and themselves, never the
  upper layers (training, evaluation, bundle, commands, ...).
"""

import ast
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import decoder

ROOT = Path(decoder.__file__).parent
LOWER = ("models", "data", "foundation")


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages([str(ROOT)], prefix="decoder.") if not m.name.endswith("__main__"))


def test_every_decoder_module_imports_without_gradio_or_the_explorer():
    code = f"""
import importlib, importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("gradio", "gradio_client", "ui"):
            raise ImportError(f"{{name}} must not be imported by decoder/")

sys.meta_path.insert(0, Refuse())
for name in {_modules()!r}:
    importlib.import_module(name)
assert not any(m.split(".")[0] in ("gradio", "ui") for m in sys.modules), sorted(m for m in sys.modules if m.startswith(("gradio", "ui")))
print("imported", len({_modules()!r}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"imported {len(_modules())}" in out.stdout


def test_no_file_under_decoder_names_the_explorer_or_gradio():
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in ROOT.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\b(ui|gradio)\b", line)]
    assert not offenders, offenders


def _imports(path: Path) -> set[str]:
    """Absolute names of the decoder modules a file imports (at any depth)."""
    package = ".".join(("decoder", *path.relative_to(ROOT).with_suffix("").parts))
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + "._"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                out.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m == "decoder" or m.startswith("decoder.")}


def test_lower_layers_import_only_the_base_and_themselves():
    bad = []
    for layer in LOWER:
        for path in (ROOT / layer).rglob("*.py"):
            for name in _imports(path):
                parts = name.split(".")
                allowed = len(parts) > 1 and (parts[1] == layer or parts[1].startswith("_") or parts[1] == "paths")
                if not allowed:
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_the_layer_check_sees_relative_imports(tmp_path):
    """The checker itself: a relative import of an upper layer is caught."""
    assert _imports(ROOT / "models" / "decoder.py") >= {"decoder._validation", "decoder.models.backbone"}
    assert "decoder.reconstruct" in _imports(ROOT / "evaluate.py")
