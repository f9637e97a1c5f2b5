"""The checked network that every backend and tool reads: typed steps (network), the typed expressions of
channel counts and conditions (values), the step visitor, and which block instances share a class."""
