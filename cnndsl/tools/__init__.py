"""Tools over the checked network and the syntax tree: summary, graph, ONNX export, and the formatter."""
