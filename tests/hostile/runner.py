"""Running a case: one ``aknet`` subprocess in the case's own folder, with a timeout, and a
fingerprint of the user's files before and after it."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

from .case import Case, Outcome


def fingerprint(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: a file's size, mtime, inode and mode; a folder's names.

    Cheap enough to take around every case; :func:`deep_digest` hashes the bytes as well.
    """
    prints: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(folder, root)
        prints[rel + "/"] = tuple(sorted(dirs + files))
        for name in files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            prints[os.path.join(rel, name)] = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)
    return prints


def changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """Entries added, removed or altered between two fingerprints."""
    keys = before.keys() | after.keys()
    return sorted(k for k in keys if before.get(k) != after.get(k))


def deep_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (names relative to it)."""
    digests = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        h = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
        digests[str(path.relative_to(root))] = h.hexdigest()
    return digests


def spawn(argv: list[str], case_dir: Path, env: dict) -> subprocess.Popen:
    """Start ``argv`` in its own process group (so a timeout can stop its workers too)."""
    return subprocess.Popen(argv, cwd=case_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float, started: float) -> Outcome:
    """Wait for ``proc``; past ``timeout`` kill its process group and report rc ``None``."""
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this harness created for it
        out, err = proc.communicate()
        rc = None
    return Outcome(rc, out, err, time.monotonic() - started)


def run_plain(case: Case, case_dir: Path, env: dict, aknet: str) -> Outcome:
    started = time.monotonic()
    return finish(spawn([aknet, *case.argv], case_dir, env), case.timeout, started)


def run_reader_gone(case: Case, case_dir: Path, env: dict, aknet: str) -> Outcome:
    """``aknet ... | head`` once ``head`` has quit: stdout is a pipe whose read end is closed
    before the first write, and stdout is block-buffered as in a user's shell."""
    env = {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}
    read_end, write_end = os.pipe()
    os.close(read_end)
    started = time.monotonic()
    try:
        proc = subprocess.Popen([aknet, *case.argv], cwd=case_dir, env=env, stdout=write_end, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True)
    finally:
        os.close(write_end)
    outcome = finish(proc, case.timeout, started)
    return Outcome(outcome.rc, "", outcome.stderr, outcome.seconds)
