"""Builder graph passes, one module each; pipeline.py lists them in the order the builder runs them."""
