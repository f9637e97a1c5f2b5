"""Text -> syntax tree: the grammar's parser (Lark's tables), the AST, and syntax errors as diagnostics."""
