"""The explorer's Gradio tabs (not built yet; see README). ``decoder/`` never
imports this package."""
