"""The PyTorch backend: the only code that writes Python (codegen, emit, pyexpr, pyfmt) and loads it."""
