"""The MindLens explorer: Gradio tabs over the ``decoder`` library.

``build_demo(explorer)`` assembles the tabs; ``app.py`` loads the bundle,
builds an :class:`ui.explorer.Explorer` and launches. ``decoder/`` never
imports this package.
"""

from .app import CSS, THEME, build_demo, deep_link
from .explorer import Explorer

__all__ = ["CSS", "Explorer", "THEME", "build_demo", "deep_link"]
