#!/usr/bin/env bash
# Smoke test of a built Mimic bundle, run without Python: bash build_spec/smoke_test.sh [DIST_DIR | EXECUTABLE]
# (DIST_DIR: a one-folder build, default dist/mimic; EXECUTABLE: e.g. the one-file build dist/mimic-onefile)
#
#   1. `mimic --help` lists the sub-commands
#   2. `mimic --bundle-check`: every bundled module imports, data files present, torch/ONNX/MediaPipe/Qt/PyAV work
#   3. `mimic render` of the carphone clip onto the astronaut portrait (weights-free warp), offscreen;
#      the output must have as many frames as the clip (counted by the bundle's own PyAV)
#   4. the GUI under Xvfb (xcb platform) when xvfb-run exists, else offscreen; a grab of the window is saved
#
# Environment (all optional):
#   MIMIC_FIXTURES       fixture folder (default: ../shared/fixtures beside the repository)
#   MIMIC_SMOKE_DRIVING  driving video   (default: $MIMIC_FIXTURES/video/carphone_pristine.mp4)
#   MIMIC_SMOKE_TARGET   target portrait (default: $MIMIC_FIXTURES/portraits/astronaut.png)
#   MIMIC_SMOKE_OUT      where outputs and logs go (default: a new temporary folder)
#   MIMIC_SMOKE_NO_GUI=1 skip step 4
# Exit status: 0 all passed; 1 a step failed (its log tail and any missing module/file are printed).
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dist=${1:-$repo/dist/mimic}
if [ -f "$dist" ]; then bin=$dist; else bin="$dist/mimic"; fi
fixtures=${MIMIC_FIXTURES:-$repo/../shared/fixtures}
driving=${MIMIC_SMOKE_DRIVING:-$fixtures/video/carphone_pristine.mp4}
target=${MIMIC_SMOKE_TARGET:-$fixtures/portraits/astronaut.png}
out=${MIMIC_SMOKE_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/mimic-smoke.XXXXXX")}
mkdir -p "$out"

if [ ! -x "$bin" ]; then
  echo "smoke test: no executable at $bin (build it with: make dist)" >&2
  exit 1
fi

# No Python from outside may leak in: the bundle must stand alone. Settings/cache go to $out.
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
export PATH=/usr/local/bin:/usr/bin:/bin
export HOME="$out/home" XDG_CONFIG_HOME="$out/home/.config" XDG_CACHE_HOME="$out/home/.cache"
mkdir -p "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME"
export QT_QPA_PLATFORM=offscreen

failed=0
pass() { echo "PASS  $1"; }
skip() { echo "SKIP  $1"; }
fail() {
  local what=$1 log=$2
  echo "FAIL  $what (log: $log)" >&2
  tail -n 25 "$log" | sed 's/^/      | /' >&2
  # name what is missing, loudly
  grep -hoE "No module named '[^']+'|ModuleNotFoundError: [^ ]+.*|MISSING .*|FileNotFoundError: .*|cannot open shared object file.*|Could not find the Qt platform plugin.*|version .GLIBC[^ ]* not found.*" "$log" \
    | sort -u | sed 's/^/      missing: /' >&2
  failed=1
}
# run NAME TIMEOUT CMD... : runs CMD with a time limit, output to $out/NAME.log
run() {
  local name=$1 limit=$2; shift 2
  timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
}
json_field() {  # json_field FIELD < one-line JSON (no python outside the bundle needed)
  sed -nE "s/.*\"$1\": *\"?([^,\"}]*)\"?.*/\1/p"
}

echo "smoke test of $dist ($(du -sh "$dist" | cut -f1)); outputs in $out"

# 1. CLI help
if run help 60 "$bin" --help && grep -q "render" "$out/help.log"; then
  pass "mimic --help"
else
  fail "mimic --help" "$out/help.log"
fi

# 2. the bundle's own check
if run bundle-check 600 "$bin" --bundle-check; then
  pass "mimic --bundle-check"
  grep -E "^note" "$out/bundle-check.log" | sed 's/^/      /'
else
  fail "mimic --bundle-check" "$out/bundle-check.log"
fi

# 3. offline render with the default (weights-free) reenactor
have_fixtures=1
for f in "$driving" "$target"; do
  [ -f "$f" ] || { have_fixtures=0; missing_fixture=$f; }
done
if [ "$have_fixtures" = 0 ]; then
  skip "render: fixture $missing_fixture not found (set MIMIC_FIXTURES or MIMIC_SMOKE_DRIVING/MIMIC_SMOKE_TARGET)"
else
  video="$out/render.mp4"
  if run render 600 "$bin" render --driving "$driving" --target "$target" -o "$video" \
      && run probe-render 120 "$bin" --bundle-probe "$video" && run probe-driving 120 "$bin" --bundle-probe "$driving"; then
    got=$(json_field frames <"$out/probe-render.log"); want=$(json_field frames <"$out/probe-driving.log")
    size="$(json_field width <"$out/probe-render.log")x$(json_field height <"$out/probe-render.log")"
    if [ -n "$got" ] && [ "$got" = "$want" ]; then
      pass "mimic render: $video, $got frames ($size), as many as the driving clip"
    else
      echo "frames: output ${got:-?}, driving ${want:-?}" >>"$out/render.log"
      fail "mimic render: output has ${got:-no} frames, the driving clip $want" "$out/render.log"
    fi
  else
    for log in render probe-render probe-driving; do
      [ -f "$out/$log.log" ] && tail -n 3 "$out/$log.log" >>"$out/render-all.log"
    done
    fail "mimic render" "$out/render.log"
  fi
fi

# 4. the GUI, long enough for a screenshot
if [ "${MIMIC_SMOKE_NO_GUI:-0}" = 1 ]; then
  skip "GUI (MIMIC_SMOKE_NO_GUI=1)"
else
  shot="$out/gui.png"
  gui_args=()
  [ "$have_fixtures" = 1 ] && gui_args=(--source "$driving" --target "$target")
  if command -v xvfb-run >/dev/null 2>&1; then
    platform=xcb
    launch=(xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb)
  else
    platform=offscreen
    echo "      (xvfb-run not found: the GUI runs offscreen; install xvfb to test the xcb platform)"
    launch=(env QT_QPA_PLATFORM=offscreen)
  fi
  if run gui 180 "${launch[@]}" "$bin" --bundle-screenshot "$shot" "${gui_args[@]}" \
      && run probe-gui 60 "$bin" --bundle-probe "$shot"; then
    std=$(json_field std <"$out/probe-gui.log")
    size="$(json_field width <"$out/probe-gui.log")x$(json_field height <"$out/probe-gui.log")"
    if [ -n "$std" ] && [ "${std%%.*}" -ge 5 ]; then
      pass "GUI ($platform): screenshot $shot ($size, pixel std $std)"
    else
      fail "GUI ($platform): screenshot $shot is blank (pixel std ${std:-?})" "$out/gui.log"
    fi
  else
    fail "GUI ($platform)" "$out/gui.log"
  fi
fi

if [ "$failed" = 0 ]; then
  echo "smoke test passed"
else
  echo "smoke test FAILED" >&2
fi
exit "$failed"
