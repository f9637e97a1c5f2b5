"""Backends: what the checked IR becomes."""
