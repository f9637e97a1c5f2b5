"""The op catalog: one module per family; each registers its OpSpecs in REGISTRY."""

from . import activation, conv, norm, pool, reshape, tensor  # noqa: F401  (registration)
from .base import REGISTRY, Ctx, LayerError, OpSpec, Opt, Result

__all__ = ["REGISTRY", "Ctx", "LayerError", "Opt", "OpSpec", "Result"]
