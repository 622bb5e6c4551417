#!/usr/bin/env bash
# FFmpeg's shared libraries for the torchcodec backend, so that CI exercises it. Idempotent and
# quick: nothing happens when libavcodec is already known to the dynamic loader. Never fatal:
# without FFmpeg the torchcodec tests skip (with the reason) and everything else still runs.
set -uo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so\.'; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "ensure_ffmpeg: no FFmpeg libraries and no root apt-get: the torchcodec tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; then
    echo "ensure_ffmpeg: installed $(ffmpeg -version | head -n 1)"
else
    echo "ensure_ffmpeg: apt-get install ffmpeg failed: the torchcodec tests will skip" >&2
fi
exit 0
