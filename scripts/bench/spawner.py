"""A small process, started before the harness imports anything heavy, that launches the
peak-RSS measurement children on the harness's behalf.

Why: Linux carries a process's high-water RSS across fork/vfork + exec into the child's
`ru_maxrss` (see load_memory.py). A child started by the harness itself — which by then holds
JAX, torch and a 440 MB model — would start with that peak as its own and measure nothing. The
spawner stays at a few MB, so its children start clean.

Protocol: one JSON line in ({"argv": [...], "cwd": ...}), one JSON line out
({"returncode", "stdout", "stderr"}); EOF on stdin ends it.
"""
from __future__ import annotations

import json
import subprocess
import sys

_SERVE = r"""
import json, subprocess, sys
for line in sys.stdin:
    request = json.loads(line)
    done = subprocess.run(request["argv"], cwd=request.get("cwd"), capture_output=True, text=True)
    sys.stdout.write(json.dumps({"returncode": done.returncode, "stdout": done.stdout,
                                 "stderr": done.stderr}) + "\n")
    sys.stdout.flush()
"""


class Spawner:
    def __init__(self):
        self._proc = subprocess.Popen([sys.executable, "-c", _SERVE], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)

    def run(self, argv: list[str], cwd: str | None = None) -> subprocess.CompletedProcess:
        if self._proc.poll() is not None:
            raise RuntimeError(f"the spawner process exited with status {self._proc.returncode}")
        self._proc.stdin.write(json.dumps({"argv": argv, "cwd": cwd}) + "\n")
        self._proc.stdin.flush()
        reply = json.loads(self._proc.stdout.readline())
        return subprocess.CompletedProcess(argv, reply["returncode"], reply["stdout"], reply["stderr"])

    def close(self):
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=30)
