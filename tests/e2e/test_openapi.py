"""The admin API's OpenAPI document (`/api/v1/openapi.json`) kept true: schemathesis (from PyPI)
generates requests for every operation from the document and runs them against the running host
on the HTTP port, checking no 5xx, documented statuses, content types and response schemas."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import report

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_openapi_document_matches_the_running_host(host, tmp_path):
    base = f"http://127.0.0.1:{host.http_port}/api/v1"
    document = json.loads(urllib.request.urlopen(f"{base}/openapi.json", timeout=10).read())
    assert document["openapi"].startswith("3.")
    page = urllib.request.urlopen(f"http://127.0.0.1:{host.http_port}/dashboard", timeout=10).read().decode()
    token = re.search(r'name="hati-token" content="([0-9A-Fa-f]+)"', page).group(1)
    result = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{base}/openapi.json", "--url", base,
         "-H", f"X-Hati-Token: {token}", "--checks", "all",
         # The event stream never ends; the bus has its own tests.
         "--exclude-path", "/events",
         "--max-examples", "25", "--mode", "positive", "--no-color"],
        capture_output=True, text=True, timeout=600,
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
    )
    tail = "\n".join(result.stdout.splitlines()[-25:])
    print(result.stdout[-6000:], result.stderr[-2000:])
    summary = [line for line in result.stdout.splitlines() if re.search(r"\d+ (passed|failed)|operations|test cases", line)]
    report("schemathesis: " + " | ".join(s.strip() for s in summary[-3:]))
    assert result.returncode == 0, tail
