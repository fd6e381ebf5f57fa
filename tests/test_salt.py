"""The data directory's secret (the salt of key partitions and limiter files) appears whole or not at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from servers import ROOT

from nanobanana_ui.quota.partitions import SALT_FILE, stable_salt
from nanobanana_ui.quota.shared_limits import SharedRateLimiter, shared_limiter_for

CRASH_MID_WRITE = """
import os, signal
os.open({path!r}, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # created, killed before its 32 bytes were written
os.kill(os.getpid(), signal.SIGKILL)
"""

READ_SALT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from nanobanana_ui.quota.partitions import stable_salt
while time.time() < {start}:
    time.sleep(0.001)
print(stable_salt(Path({home!r})).hex())
"""


def test_a_secret_left_empty_by_a_crash_is_made_anew_and_the_limit_is_still_shared(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    crashed = subprocess.run([sys.executable, "-c", CRASH_MID_WRITE.format(path=str(home / SALT_FILE))], check=False)
    assert crashed.returncode == -signal.SIGKILL and (home / SALT_FILE).read_bytes() == b""
    salt = stable_salt(home)
    assert len(salt) == 32 and stable_salt(home) == salt == (home / SALT_FILE).read_bytes()
    assert os.stat(home / SALT_FILE).st_mode & 0o777 == 0o600
    assert [p.name for p in home.iterdir() if p.name.startswith(f"{SALT_FILE}.damaged-")]  # set aside, not deleted
    limiter = shared_limiter_for("https://salt.test", 2, 1.0, home=home, key="salt-test-key-not-secret")
    assert isinstance(limiter, SharedRateLimiter)  # not the silent per-process fallback


def test_a_reader_waits_for_a_writer_still_at_work_instead_of_failing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    path = home / SALT_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # an older version's writer, between its steps
    written = os.urandom(32)

    def finish_writing() -> None:
        time.sleep(0.2)
        os.write(fd, written)
        os.close(fd)

    writer = threading.Thread(target=finish_writing)
    writer.start()
    try:
        assert stable_salt(home) == written  # read again until whole; the writer's secret is kept
    finally:
        writer.join()
    assert not [p for p in home.iterdir() if p.name != SALT_FILE and not p.name.startswith(".")]


def test_processes_creating_the_secret_at_once_all_get_the_same_one(tmp_path):
    home = tmp_path / "home"
    start = time.time() + 1.0  # every process is up by then: they all find no secret and race to create it
    readers = [subprocess.Popen([sys.executable, "-c", READ_SALT.format(root=str(ROOT), home=str(home), start=start)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    outputs = [reader.communicate(timeout=60) for reader in readers]
    assert [reader.returncode for reader in readers] == [0] * 8, [err for _, err in outputs]
    assert {out.strip() for out, _ in outputs} == {(home / SALT_FILE).read_bytes().hex()}
    assert sorted(p.name for p in home.iterdir()) == [SALT_FILE]  # no temp file left behind
