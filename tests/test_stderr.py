"""silenced_stderr from several threads at once: fd 2 is silenced while any call is active and
points where it did once the last one ends (issue 17: an error line could vanish)."""

import os
import threading

from aknet_cli._stderr import silenced_stderr


def _fd2_identity() -> tuple[int, int]:
    info = os.fstat(2)
    return info.st_dev, info.st_ino


def _devnull_identity() -> tuple[int, int]:
    info = os.stat(os.devnull)
    return info.st_dev, info.st_ino


def test_overlapping_calls_from_two_threads_restore_fd2():
    # The order that broke the old version: A enters, B enters (and saved /dev/null as "the
    # original"), A leaves, B leaves last and "restored" /dev/null for the rest of the process.
    before = _fd2_identity()
    assert before != _devnull_identity()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, tuple[int, int]] = {}

    def first() -> None:
        with silenced_stderr():
            a_in.set()
            b_in.wait(5)
            seen["both inside"] = _fd2_identity()
        a_out.set()

    def second() -> None:
        a_in.wait(5)
        with silenced_stderr():
            b_in.set()
            a_out.wait(5)
            seen["after the first left"] = _fd2_identity()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen["both inside"] == _devnull_identity()
    assert seen["after the first left"] == _devnull_identity()  # still silenced for the second
    assert _fd2_identity() == before


def test_many_overlapping_threads_leave_fd2_where_it_was():
    before = _fd2_identity()
    start = threading.Barrier(8)

    def work(i: int) -> None:
        start.wait(5)
        for _ in range(50 + 7 * i):
            with silenced_stderr():
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert _fd2_identity() == before


def test_nested_calls_in_one_thread():
    before = _fd2_identity()
    with silenced_stderr():
        with silenced_stderr():
            assert _fd2_identity() == _devnull_identity()
        assert _fd2_identity() == _devnull_identity()
    assert _fd2_identity() == before


def _sthv2_with_a_zero_byte_video(root, *, bad: int, clips: int = 24):
    """A V2 release of ``clips`` tiny WebM videos in train, video ``bad`` of them zero bytes."""
    import json

    from data_fixtures import tiny_clip

    from aknet_cli.data.synthetic import write_video

    root.mkdir(parents=True)
    (root / "something-something-v2-labels.json").write_text(json.dumps({"Moving something up": "0"}))
    train = [{"id": str(i), "label": "x", "template": "Moving [something] up", "placeholders": ["x"]}
             for i in range(clips)]
    (root / "something-something-v2-train.json").write_text(json.dumps(train))
    (root / "something-something-v2-validation.json").write_text(json.dumps(train[1:2]))
    write_video(root / "good.webm", tiny_clip(8), fps=10, codec="libvpx")
    for i in range(clips):
        (root / f"{i}.webm").write_bytes(b"" if i == bad else (root / "good.webm").read_bytes())
    return root


def _aknet(*args: str):
    import subprocess
    import sys

    # A real process: the bug was fd 2 itself pointing at /dev/null, which no in-process
    # capture of sys.stderr would show.
    command = [sys.executable, "-c", "from aknet_cli.cli.main import run; run()", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_prepare_prints_its_skip_summary_after_counting_in_threads(tmp_path):
    root = _sthv2_with_a_zero_byte_video(tmp_path / "raw", bad=0)
    result = _aknet("prepare", "sthv2", "--root", str(root), "--out", str(tmp_path / "ds"),
                    "--workers", "1", "--backend", "decord")
    assert result.returncode == 0, result.stderr
    assert "skipped 1 clip" in result.stderr
    assert "zero-byte video" in result.stderr and str(root / "0.webm") in result.stderr


def test_prepare_strict_prints_its_error_after_counting_in_threads(tmp_path):
    root = _sthv2_with_a_zero_byte_video(tmp_path / "raw", bad=23)  # last: the threads count the others first
    result = _aknet("prepare", "sthv2", "--root", str(root), "--out", str(tmp_path / "ds"),
                    "--workers", "1", "--backend", "decord", "--strict")
    assert result.returncode == 1
    assert "--strict" in result.stderr and str(root / "23.webm") in result.stderr, result.stderr
