"""Frame counting and decoding on generated media: VFR WebM, truncation, short clips, quiet decoders."""

import subprocess
import sys
import textwrap

import pytest
from data_fixtures import tiny_clip, video_backends, write_vfr_webm

from aknet_cli.data.synthetic import write_video
from aknet_cli.data import torchcodec_io
from aknet_cli.data.video_io import BACKENDS, backend_installed, check_backend, count_video_frames, read_video
from aknet_cli.exceptions import ConfigError, VideoDecodeError


@pytest.mark.parametrize("backend", video_backends())
def test_variable_frame_rate_webm_is_counted_not_called_truncated(tmp_path, backend):
    import av

    path = tmp_path / "6.webm"
    estimate = write_vfr_webm(path, frames=60)
    with av.open(str(path)) as container:  # independent count: decode every frame
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == 60
    # duration x average rate overstates the frames by far: a header rule would call it truncated
    assert estimate > 1.5 * decoded
    assert count_video_frames(path, backend=backend) == decoded
    assert read_video(path, [0, 59], backend=backend).shape[0] == 2


@pytest.mark.parametrize("backend", video_backends())
def test_truncated_webm_is_reported_as_truncated(tmp_path, backend):
    path = tmp_path / "cut.webm"
    write_video(path, tiny_clip(40), fps=10, codec="libvpx")
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 5])
    with pytest.raises(VideoDecodeError, match=r"^truncated video .*cut\.webm"):
        count_video_frames(path, backend=backend)


@pytest.mark.parametrize("backend", video_backends())
def test_cut_mp4_with_its_index_in_front_is_truncated(tmp_path, backend):
    import av

    path = tmp_path / "cut.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:  # index (moov) first
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for frame in tiny_clip(40):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert count_video_frames(path, backend=backend) == 40
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 3 // 5])
    with pytest.raises(VideoDecodeError, match=r"^truncated video .*cut\.mp4"):
        count_video_frames(path, backend=backend)


def test_pyav_short_video_names_the_frames_that_decode(tmp_path):
    path = tmp_path / "three.mp4"
    write_video(path, tiny_clip(3), fps=10, codec="mpeg4")
    with pytest.raises(VideoDecodeError, match=r"ends before frame 8 \(only 3 decodable\)"):
        read_video(path, [0, 8], backend="pyav")


INSTALLED = [b for b in BACKENDS if backend_installed(b)]


def test_decoders_write_nothing_to_stderr(tmp_path):
    # FFmpeg (inside decord and PyAV) writes to file descriptor 2 itself, so only a separate
    # process shows what a user's terminal would get.
    cut, text, vfr = tmp_path / "cut.webm", tmp_path / "text.webm", tmp_path / "vfr.webm"
    write_video(cut, tiny_clip(40), fps=10, codec="libvpx")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 2 // 5])
    text.write_text("not a video\n" * 20)
    write_vfr_webm(vfr, frames=30)
    script = textwrap.dedent(f"""
        from aknet_cli.data.video_io import count_video_frames, read_video
        for backend in {INSTALLED!r}:
            for path in {[str(cut), str(text), str(vfr)]!r}:
                for call in (lambda: count_video_frames(path, backend=backend),
                             lambda: read_video(path, [0, 25], backend=backend)):
                    try:
                        call()
                    except Exception as exc:
                        assert type(exc).__name__ == "VideoDecodeError", exc
        print("done")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr
    assert result.stderr == ""


def _every_frame(path):
    """An independent decode: PyAV, sequentially, every frame as ``uint8 (N, 3, H, W)``."""
    import av
    import numpy as np
    import torch

    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


def _gop_clip(frames: int = 48, size: int = 64):
    """Frames that all differ (a moving bar over noise), so a wrong frame cannot match."""
    import numpy as np

    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    for f in range(frames):
        clip[f, :, f % size] = 255
    return clip


def _write_keyframed(path, codec, *, gop=8):
    """A clip with a keyframe every ``gop`` frames (and B-frames for H.264): seeking matters."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=12)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop)} | ({"bf": "2"} if codec == "libx264" else {})
        for frame in _gop_clip():
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.parametrize("backend", video_backends())
@pytest.mark.parametrize("kind", ["vp9.webm", "h264.mp4", "vfr.webm"])
def test_every_sampled_frame_equals_an_independent_decode(tmp_path, backend, kind):
    import torch

    path = tmp_path / kind
    if kind == "vfr.webm":
        write_vfr_webm(path, frames=48, size=64)
    else:
        _write_keyframed(path, {"vp9.webm": "libvpx-vp9", "h264.mp4": "libx264"}[kind])
    expected = _every_frame(path)
    assert count_video_frames(path, backend=backend) == len(expected) == 48
    # Backwards and forwards across keyframes, with repeats, as TSN sampling and TDN windows ask.
    indices = [47, 3, 3, 20, 8, 7, 0, 33, 34, 35, 16, 47, 1]
    got = read_video(path, indices, backend=backend)
    assert got.dtype == torch.uint8 and got.shape == (len(indices), 3, 64, 64)
    for position, index in enumerate(indices):
        assert (got[position] == expected[index]).all(), f"{backend} frame {index} differs from PyAV's"


def test_cpu_backends_refuse_a_gpu_device(tmp_path):
    path = tmp_path / "a.mp4"
    write_video(path, tiny_clip(4), fps=10, codec="mpeg4")
    with pytest.raises(ConfigError, match="needs backend 'torchcodec'"):
        read_video(path, [0], backend="pyav", device="cuda")


@pytest.mark.parametrize("backend", video_backends())
def test_index_past_the_end_names_the_decodable_frames(tmp_path, backend):
    path = tmp_path / "three.mp4"
    write_video(path, tiny_clip(3), fps=10, codec="mpeg4")
    with pytest.raises(VideoDecodeError, match="three.mp4"):
        read_video(path, [0, 8], backend=backend)


def test_missing_ffmpeg_is_one_line_naming_the_libraries(monkeypatch):
    # No FFmpeg: no soname of any supported major loads (the real ones are replaced by absent names).
    fake = {major: tuple(name.replace(".so.", ".so.0missing") for name in names)
            for major, names in torchcodec_io.FFMPEG_SONAMES.items()}
    monkeypatch.setattr(torchcodec_io, "FFMPEG_SONAMES", fake)
    torchcodec_io.ffmpeg_major.cache_clear()
    try:
        assert torchcodec_io.ffmpeg_major() is None
        assert not backend_installed("torchcodec")
        if torchcodec_io.unavailable_reason() is None or "not installed" in torchcodec_io.unavailable_reason():
            pytest.skip("torchcodec itself is not installed here")
        with pytest.raises(ConfigError) as info:
            check_backend("torchcodec")
        message = str(info.value)
        assert "\n" not in message
        for library in ("libavutil", "libavcodec", "libavformat", "libswscale"):
            assert library in message
        assert "FFmpeg 4-9" in message and "apt-get install ffmpeg" in message
        with pytest.raises(ConfigError, match="FFmpeg"):
            torchcodec_io.import_torchcodec.__wrapped__()
    finally:
        monkeypatch.undo()
        torchcodec_io.ffmpeg_major.cache_clear()


def test_without_torchcodec_the_default_falls_back_and_naming_it_says_what_to_install():
    # A machine without torchcodec (or without FFmpeg) is simulated by making its import fail.
    script = textwrap.dedent("""
        import sys
        sys.modules["torchcodec"] = None
        from aknet_cli.data.video_io import backend_installed, check_backend, default_backend
        from aknet_cli.exceptions import ConfigError
        print(default_backend())
        try:
            check_backend("torchcodec")
        except ConfigError as exc:
            print(exc)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    default, message = result.stdout.strip().splitlines()
    assert default == ("decord" if backend_installed("decord") else "pyav")
    assert message == ("video backend 'torchcodec' is not installed: pip install 'aknet[torchcodec]' "
                       "(or use backend 'pyav')")


def _latin1_tree(root):
    """Two classes of three clips each, every file name holding a Latin-1 byte (``caf\\xe9`` as
    a Latin-1 system writes it: not UTF-8, a valid Linux name), and one plain-named copy."""
    import os
    import shutil

    import numpy as np

    names = []
    for k, label in enumerate(("a", "b")):
        (root / label).mkdir(parents=True)
        for i in range(3):
            name = root / label / os.fsdecode(b"caf\xe9" + f"{i}.mp4".encode())
            write_video(name, np.roll(tiny_clip(6), 5 * k + i, axis=2), fps=10, codec="mpeg4")
            names.append(name)
    plain = root.parent / "plain.mp4"
    shutil.copyfile(names[0], plain)
    return names, plain


@pytest.mark.parametrize("backend", video_backends())
def test_a_file_name_that_is_not_utf8_is_read_by_every_command(tmp_path, backend):
    """``caf\\xe9.mp4`` reaches Python as ``'caf\\udce9.mp4'``, which torchcodec and decord could
    not pass on to FFmpeg: it must count and decode as the same file under a plain name does, and
    prepare, the training data loader, predict and visualize must read it."""
    import json

    from typer.testing import CliRunner

    from aknet_cli.cli.main import app
    from aknet_cli.data.dataset import VideoDataset
    from cli_helpers import write_stage1_checkpoint

    names, plain = _latin1_tree(tmp_path / "tree")
    assert count_video_frames(names[0], backend=backend) == count_video_frames(plain, backend="pyav") == 6
    assert (read_video(names[0], [5, 0, 3], backend=backend) == read_video(plain, [5, 0, 3], backend="pyav")).all()
    runner = CliRunner()
    out = tmp_path / "ds"
    result = runner.invoke(app, ["prepare", "folder", "--root", str(tmp_path / "tree"), "--out", str(out), "--backend",
                                 backend, "--val-fraction", "0.34", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["splits"] == {"train": 4, "val": 2}
    clip, label = VideoDataset(out, "train", num_segments=2, backend=backend)[0]
    assert clip.shape[:2] == (2, 3) and label in (0, 1)
    ckpt = tmp_path / "s1.pt"
    write_stage1_checkpoint(ckpt)
    result = runner.invoke(app, ["predict", str(names[1]), "-c", str(ckpt), "--backend", backend, "--json"])
    assert result.exit_code == 0, result.output
    assert [v["error"] for v in json.loads(result.stdout)["videos"]] == [None]
    result = runner.invoke(app, ["visualize", "--video", str(names[2]), "-b", "resnet18", "--frames", "2", "--split",
                                 "res3", "--resize", "36", "--crop", "32", "--backend", backend, "--out",
                                 str(tmp_path / "vis"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_frames"] == 6
