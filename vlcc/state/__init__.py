"""Capture: providers (one file per kind) and their composition into a state."""
