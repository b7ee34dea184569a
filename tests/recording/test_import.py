"""`import tokenlog` stays light: no SDK is imported until one is used."""

from __future__ import annotations

import json
import subprocess
import sys


def test_importing_tokenlog_imports_no_sdk() -> None:
    code = (
        "import json, sys, tokenlog\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'mistralai', 'openai', 'opentelemetry', 'httpx', 'httpx2', 'requests', 'pydantic'})))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == []


def test_the_public_api_is_importable_from_the_package() -> None:
    import tokenlog

    for name in tokenlog.__all__:
        assert getattr(tokenlog, name) is not None, name
