"""Syntax tree -> checked IR: the checker walks networks and blocks, resolves every layer's options,
infers and checks every shape, and records which parameters the code uses concretely (pins)."""
