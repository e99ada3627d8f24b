"""The node tier's machine lock (node.node_lock): a second node tier on the same machine
waits for the first instead of fighting it over the fixed ports (no root needed here)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .node import node_lock

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from tests.real.node import node_lock
with node_lock(__import__("pathlib").Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_second_holder_waits_for_the_first_and_says_so(tmp_path, capfd):
    lock = tmp_path / "node.lock"
    first = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), "3"], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "held"
        assert f"pid {first.pid} " in lock.read_text()
        start = time.monotonic()
        with node_lock(lock, poll=0.1):
            waited = time.monotonic() - start
            # ours now: the file names this process
            assert lock.read_text().startswith(f"pid {os.getpid()} ")
            # the first holder had left its block (it sleeps 3 s in it)
            assert waited >= 2.5, waited
        err = capfd.readouterr().err
        assert f"is held by pid {first.pid}" in err and "waiting for it to finish" in err, err
        assert "got " in err
    finally:
        first.kill()
        first.wait()


def test_lock_is_released_when_the_holder_dies(tmp_path):
    lock = tmp_path / "node.lock"
    first = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), "600"], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "held"
    first.kill()
    first.wait()
    start = time.monotonic()
    with node_lock(lock, poll=0.1):
        assert time.monotonic() - start < 2
