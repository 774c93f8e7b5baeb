#!/usr/bin/env bash
# The test command: bash scripts/test.sh [PYTEST ARGS...]
#
# On a fresh Debian/Ubuntu machine (as root, or with sudo) it installs what Qt and napari
# need to draw on a virtual X display, creates .venv, installs the package with its
# testing extra, then runs ruff (lint and format), mypy, import-linter and pytest under Xvfb.
# Arguments go to pytest. The exit status is pytest's, or 1 if only a check failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv

# Xvfb, Mesa software OpenGL and the X/xcb libraries the Qt xcb platform plugin loads
SYSTEM_PACKAGES=(
    xvfb xauth
    libgl1 libgl1-mesa-dri libegl1 libglib2.0-0 libdbus-1-3 libfontconfig1
    libx11-xcb1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
    libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0
    libxcb-cursor0
)

log() { printf '\n==> %s\n' "$*"; }

install_system_packages() {
    if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
        command -v xvfb-run >/dev/null && return 0
        echo "error: not a Debian-like system and xvfb-run is missing;" \
            "install Xvfb, Mesa OpenGL and the Qt xcb libraries by hand" >&2
        exit 2
    fi
    local missing=() package
    for package in "${SYSTEM_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    # Debian's own python3 needs python3-venv for `python3 -m venv`
    if ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    log "installing system packages: ${missing[*]}"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_python_packages() {
    if [[ ! -x $VENV/bin/python ]]; then
        log "creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    # reinstall only when pyproject.toml changed since the last install
    local stamp=$VENV/.napari-batch-pipeline-testing
    local digest
    digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [[ -f $stamp && $(cat "$stamp") == "$digest" ]] \
        && "$VENV/bin/python" -c "import napari_batch_pipeline" 2>/dev/null; then
        return 0
    fi
    log "installing the package and its testing extra into $VENV"
    # uv resolves and downloads in parallel: minutes instead of pip's quarter of an hour here.
    # Bytecode is compiled at install, as pip does: with PYTHONDONTWRITEBYTECODE set, every
    # interpreter a test starts would otherwise compile scikit-image and pandas again.
    if "$VENV/bin/python" -m pip install --quiet uv \
        && UV_COMPILE_BYTECODE=1 "$VENV/bin/uv" pip install --quiet \
            --python "$VENV/bin/python" -e ".[testing]"; then
        :
    else
        log "uv failed; installing with pip"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet -e ".[testing]"
    fi
    echo "$digest" >"$stamp"
}

install_system_packages
install_python_packages

failed=()
check() {
    local name=$1
    shift
    log "$name"
    if "$@"; then
        return 0
    else
        failed+=("$name (exit status $?)")
    fi
}

lint_paths=()
for path in src tests benchmarks; do
    if [[ -e $path ]]; then
        lint_paths+=("$path")
    fi
done
check "ruff check" "$VENV/bin/ruff" check "${lint_paths[@]}"
check "ruff format --check" "$VENV/bin/ruff" format --check "${lint_paths[@]}"
check "mypy" "$VENV/bin/mypy"
# import-linter: the core stays free of Qt, napari and the views; no import cycles
check "lint-imports" "$VENV/bin/lint-imports"

# Many tests start the command in a new interpreter. Where PYTHONDONTWRITEBYTECODE is set,
# each of them would compile the package from source again: compile it once here.
# (a file that does not compile is left to ruff and pytest to report)
"$VENV/bin/python" -m compileall -q src >/dev/null || true

# PYTEST_WORKERS=N shares the test files out to N processes (pytest-xdist), a whole file to
# one worker so that its fixtures are made once. The default, 0, runs them in this process:
# on a 2-core machine two workers were no faster, and tests that time a cancel or a kill
# lost their margins to the load.
workers=${PYTEST_WORKERS:-0}
xdist=()
if [[ $workers != 0 ]]; then
    xdist=(-n "$workers" --dist loadfile)
fi
log "pytest ${xdist[*]} $*"
# A real X server (not QT_QPA_PLATFORM=offscreen, which cannot draw napari's image layers);
# GUI tests fail, never skip, without a display. xvfb-run gives the display, so the
# pytest-xvfb plugin is told not to start a second one.
pytest_status=0
QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1280x1024x24" \
    "$VENV/bin/python" -m pytest --no-xvfb "${xdist[@]}" "$@" || pytest_status=$?

if ((${#failed[@]})); then
    printf '\nfailed checks:\n' >&2
    printf '  %s\n' "${failed[@]}" >&2
fi
if ((pytest_status != 0)); then
    printf '\npytest failed (exit status %d)\n' "$pytest_status" >&2
    exit "$pytest_status"
fi
if ((${#failed[@]})); then
    exit 1
fi
log "all checks passed"
