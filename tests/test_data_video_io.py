"""Frame counting and decoding on generated media: VFR WebM, truncation, short clips, quiet decoders."""

import subprocess
import sys
import textwrap

import pytest
from data_fixtures import tiny_clip, write_vfr_webm

from aknet_cli.data.synthetic import write_video
from aknet_cli.data.video_io import count_video_frames, read_video
from aknet_cli.exceptions import VideoDecodeError


@pytest.mark.parametrize("backend", ["decord", "pyav"])
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


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_truncated_webm_is_reported_as_truncated(tmp_path, backend):
    path = tmp_path / "cut.webm"
    write_video(path, tiny_clip(40), fps=10, codec="libvpx")
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 5])
    with pytest.raises(VideoDecodeError, match=r"^truncated video .*cut\.webm"):
        count_video_frames(path, backend=backend)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
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
        for backend in ("decord", "pyav"):
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
