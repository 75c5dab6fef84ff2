"""The engine's version, in a module of its own so that the builder and plan writer can record it without
importing the package face (which imports them)."""
__version__ = "0.1.0"
