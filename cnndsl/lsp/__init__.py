"""`cnndsl lsp`: a Language Server Protocol server over stdio (pygls), with live shapes as you type.

The optional extra `lsp` installs what it needs: `pip install "cnndsl[lsp]"`. Like the compiler, it never
imports torch."""

from __future__ import annotations


def main() -> int:
    """Serve the protocol on standard input and output until the editor says exit."""
    try:
        from .server import main as serve
    except ImportError as e:  # pygls or lsprotocol missing
        from ..errors import UsageError

        raise UsageError(f"`cnndsl lsp` needs the `lsp` extra ({e.name or e} is missing): pip install \"cnndsl[lsp]\"") from None
    return serve()
