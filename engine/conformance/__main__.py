"""`python -m engine.conformance`: the ONNX backend node conformance run (see runner.py)."""
import sys

from .runner import main

sys.exit(main())
