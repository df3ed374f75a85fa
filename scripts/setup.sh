#!/usr/bin/env bash
# Set up Mimic in ./.venv (idempotent). Usage: scripts/setup.sh [app|test|dist]
#   app  — runtime requirements (default)
#   test — + test requirements and the system packages the GUI and audio tests use (Xvfb, xcb, PulseAudio)
#   dist — + PyInstaller
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-app}
PY=${PYTHON:-python3}

case "$what" in
  app) req=requirements.txt ;;
  test) req=requirements-test.txt ;;
  dist) req=requirements-dist.txt ;;
  *) echo "usage: scripts/setup.sh [app|test|dist]" >&2; exit 2 ;;
esac

# System packages. Sound (every mode): PortAudio, and ALSA's bridge to the desktop's PulseAudio/PipeWire.
# Tests: Qt's xcb platform (real windows, Xvfb screenshots; offscreen needs none), a PulseAudio server
# that the audio tests start privately, and Debian's chromium (the server's browser page, driven by Playwright).
sys_pkgs="libportaudio2 libasound2-plugins"
if [ "$what" != app ]; then
  sys_pkgs="$sys_pkgs xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-cursor0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libegl1 libgl1 libfontconfig1 libdbus-1-3 pulseaudio pulseaudio-utils chromium"
fi
if command -v apt-get >/dev/null 2>&1; then
  missing=$(for p in $sys_pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
    echo "installing system packages: $missing"
    ( $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null ) \
      || echo "warning: could not install system packages ($missing); without them there is no sound capture, and GUI/audio tests are skipped" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$what-$(cat requirements*.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$req"
  touch "$stamp"
fi
