"""Operator modules. Importing this package imports every module in it, and each module registers its layer
implementations and ONNX importers (see ops/base.py). Adding an op means adding or editing one module here."""
import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "base":
        importlib.import_module(f"{__name__}.{_module}")
