"""The fast tier stays fast: `make test-fast` (``pytest -m unit``) collects without importing
TensorFlow, Keras, Ray or MLflow.

pytest imports every test module, the deselected ones too, so one module-level ``import ray``
anywhere under ``tests/`` (or one ``fmnist`` module that imports Keras at its top, reached from a
test module's imports) costs every unit run seconds. A fresh interpreter collects the unit tier
and says which of the four came in, and from where.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "ray", "mlflow")

# collects the unit tier as `make test-fast` does, then prints one JSON line: each heavy module
# that came in, with the repository's frames of the stack that first imported it
COLLECT = """
import json, sys, traceback

HEAVY = set(sys.argv[1].split(","))
ROOT = sys.argv[2]
first = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY and top not in first:
            first[top] = "".join(traceback.format_list(
                [f for f in traceback.extract_stack() if f.filename.startswith(ROOT)
                 and "/.venv/" not in f.filename][-6:]))
        return None

sys.meta_path.insert(0, Watch())
import pytest

rc = pytest.main(["-m", "unit", "--collect-only", "-q", "-p", "no:cacheprovider", ROOT + "/tests"])
came = {m: first.get(m, "?") for m in sorted(HEAVY) if m in sys.modules}
print("HEAVY " + json.dumps({"rc": int(rc), "imported": came}))
"""


def test_collecting_the_unit_tier_imports_no_tensorflow_keras_ray_or_mlflow():
    done = subprocess.run([sys.executable, "-c", COLLECT, ",".join(HEAVY), str(REPO)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("HEAVY ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1][len("HEAVY "):])
    assert result["rc"] == 0, done.stdout[-3000:]
    assert result["imported"] == {}, "\n".join(
        f"{m} imported while collecting the unit tier, first from:\n{where}"
        for m, where in result["imported"].items())
