"""Developer tools, not shipped in the package: loopback emulators, the bench and measurements.

Run from the repository root (``uv run python -m devtools.bench``). The runtime package never imports this one.
"""
