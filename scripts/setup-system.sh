#!/usr/bin/env bash
# System packages the build needs, installed from apt when missing: FFmpeg's development
# libraries (video decoding in c3d-run), pkg-config and libclang (their bindings), cmake (the
# optional SEAL backend).
set -euo pipefail
if command -v cmake >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep 'libclang[-.0-9]*\.so' >/dev/null \
   && pkg-config --exists libavcodec libavformat libavutil libswscale 2>/dev/null; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "installing system packages (cmake, clang, pkg-config, FFmpeg development libraries)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq cmake libclang-dev clang pkg-config \
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavfilter-dev libavdevice-dev \
  libswresample-dev >/dev/null
