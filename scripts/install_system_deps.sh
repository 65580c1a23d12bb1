#!/usr/bin/env bash
# Installs what genreslice needs from the system, only when it is missing:
# SoX with MP3 support (Debian/Ubuntu: sox libsox-fmt-mp3), FFmpeg (decodes .m4a, .aac, .opus and .wma for SoX),
# Python's venv module, and util-linux's setpriv (SoX is started through it so that it dies with the process that
# started it).
set -euo pipefail

need=()
if ! command -v sox >/dev/null 2>&1 || ! sox -h 2>/dev/null | grep -q 'AUDIO FILE FORMATS:.* mp3'; then
    need+=(sox libsox-fmt-mp3)
fi
if ! command -v ffmpeg >/dev/null 2>&1; then
    need+=(ffmpeg)
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need+=(python3-venv)
fi
if ! command -v setpriv >/dev/null 2>&1; then
    need+=(util-linux)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "genreslice needs: ${need[*]} (no apt-get here: install them with your package manager)" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "Installing ${need[*]} with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
