#!/usr/bin/env bash
# Set up Mimic in ./.venv (idempotent). Usage: scripts/setup.sh [app|test|dist]
#   app  — runtime requirements (default)
#   test — + test requirements and the system packages the GUI and audio tests use (Xvfb, xcb, PulseAudio)
#   dist — + PyInstaller
# torch: the CUDA build (requirements-gpu.txt) where `nvidia-smi` reports an NVIDIA GPU, else the CPU build
# (requirements.txt); MIMIC_TORCH=cpu|cuda overrides. MIMIC_SETUP_DRY_RUN=1 prints the choice and the pip
# commands without installing anything.
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

# Which torch build: prints the choice and why; sets torch_req (the requirements file carrying torch).
torch_build() {
  local choice="${MIMIC_TORCH:-}" why gpus
  case "$choice" in
    cuda) why="MIMIC_TORCH=cuda" ;;
    cpu) why="MIMIC_TORCH=cpu" ;;
    "")
      if ! command -v nvidia-smi >/dev/null 2>&1; then
        choice=cpu; why="no nvidia-smi on PATH (no NVIDIA driver)"
      elif gpus=$(nvidia-smi -L 2>&1) && printf '%s\n' "$gpus" | grep -q '^GPU [0-9]'; then
        choice=cuda; why="nvidia-smi reports $(printf '%s\n' "$gpus" | grep -m1 '^GPU [0-9]' | sed 's/ (UUID:.*//')"
      else
        choice=cpu; why="nvidia-smi reports no GPU: $(printf '%s\n' "$gpus" | head -n1)"
      fi ;;
    *) echo "error: MIMIC_TORCH must be cpu or cuda, not '$choice'" >&2; exit 2 ;;
  esac
  if [ "$choice" = cuda ]; then
    torch_req=requirements-gpu.txt
    echo "torch: CUDA build (requirements-gpu.txt) — $why; MIMIC_TORCH=cpu for the CPU build"
  else
    torch_req=requirements.txt
    echo "torch: CPU build (requirements.txt) — $why; MIMIC_TORCH=cuda for the CUDA build"
  fi
  torch_kind=$choice
}
torch_build

# The mode's own requirements without requirements.txt (the torch build's file stands in for it: the GPU
# file replaces onnxruntime with onnxruntime-gpu, and both cannot be installed together).
extras_of() {
  grep -v '^-r requirements.txt' "$1" || true
}

if [ "${MIMIC_SETUP_DRY_RUN:-}" = 1 ]; then
  echo "would run: .venv/bin/python -m pip install -r $torch_req"
  if [ "$req" != requirements.txt ]; then
    echo "would run: .venv/bin/python -m pip install -r $req (less -r requirements.txt:" \
      "$(extras_of "$req" | grep -v '^#' | grep -v '^$' | tr '\n' ' ' | sed 's/ $//'))"
  fi
  exit 0
fi

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
stamp=".venv/.installed-$what-$torch_kind-$(cat requirements*.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$torch_req"
  if [ "$req" != requirements.txt ]; then
    extras=".venv/.requirements-$what-extras.txt"
    extras_of "$req" > "$extras"
    .venv/bin/python -m pip install -q -r "$extras"
  fi
  touch "$stamp"
fi
