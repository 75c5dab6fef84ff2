"""Input data: seeded generation (loader.py) and the tensor file formats (files.py)."""
