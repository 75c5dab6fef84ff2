"""The toolkit's version, in a module of its own so that the CLI can print it without importing the package face."""
__version__ = "0.1.0"
