"""What ``import tokenlog`` adds to a bare interpreter's start, measured with ``python -X importtime``."""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.common import Result


def _importtime_us(module: str) -> int:
    """The cumulative import time of ``module`` (microseconds), as ``-X importtime`` reports it."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
    )
    for line in reversed(done.stderr.splitlines()):
        fields = [field.strip() for field in line.split("|")]
        if len(fields) == 3 and fields[2] == module:
            return int(fields[1])
    raise RuntimeError(f"-X importtime did not report {module}:\n{done.stderr[-2000:]}")


def _wall_us(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return (time.perf_counter() - started) * 1e6


def run(repeats: int) -> dict[str, Result]:
    """Microseconds: tokenlog's cumulative import time, and interpreter start with and without it."""
    results = {
        name: Result(name)
        for name in (
            "import tokenlog (-X importtime, cumulative)",
            "python -c pass",
            "python -c 'import tokenlog'",
            "python -c 'import tokenlog' + first decorator and session",
        )
    }
    for _ in range(repeats):
        results["import tokenlog (-X importtime, cumulative)"].samples.append(_importtime_us("tokenlog"))
        results["python -c pass"].samples.append(_wall_us("pass"))
        results["python -c 'import tokenlog'"].samples.append(_wall_us("import tokenlog"))
        results["python -c 'import tokenlog' + first decorator and session"].samples.append(
            _wall_us("import tokenlog; tokenlog.track_usage(lambda: None); tokenlog.usage_session()")
        )
    return results
