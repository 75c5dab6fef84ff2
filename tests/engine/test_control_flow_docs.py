"""docs/control-flow.md's Python example runs as written and prints what its comments promise."""
from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "control-flow.md"


def test_control_flow_doc_example_runs(capsys):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)[1]
    exec(compile(code, str(DOC), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "[ 8. 16. 24.]"  # 1,2,3 doubled three times: sums 12, 24, 48 (>= 40 stops)
    assert printed[1] == "(3, 3)"
