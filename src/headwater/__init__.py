"""Headwater: a self-hosted customer data activation hub for Braze."""

__version__ = "0.1.0"

__all__ = ["__version__"]
