"""A curl command line the page shows, run as a learner would paste it into a terminal."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess

import httpx


def run_curl(command: str) -> dict:
    """The page's curl as a learner would paste it; httpx with the same body where curl is missing."""
    argv = shlex.split(command)
    if shutil.which("curl"):
        return json.loads(subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout)
    url, body = argv[2], json.loads(argv[argv.index("-d") + 1])
    return httpx.post(url, json=body, timeout=120).json()
