"""Bridgewatch: self-hostable Community Notes with bridging-based scoring."""

__version__ = "0.1.0"
