"""worker.vipps stands alone: no dramatiq, no redis, nothing from worker outside worker.vipps."""

from __future__ import annotations

import json
import subprocess
import sys


def test_package_imports_nothing_outside_itself() -> None:
    code = (
        "import json, sys; import worker.vipps; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('worker', 'dramatiq', 'redis')))))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    outside = [m for m in loaded if m != "worker" and not m.startswith("worker.vipps")]
    assert "worker.vipps.client" in loaded
    assert outside == []
