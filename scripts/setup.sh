#!/usr/bin/env bash
# Idempotent environment setup used by `make demo`, `make test` and CI.
# Installs the Debian packages the project needs (as root), creates .venv and installs the project with
# the exact pins in constraints.txt. A second run does nothing but check stamps (a few hundred ms).
set -euo pipefail  # pipefail: a failing pip fails the setup even through the filter
cd "$(dirname "$0")/.."

DEB_PKGS="libportaudio2 jackd2 sox xvfb xauth fonts-dejavu-core espeak-ng libxkbcommon-x11-0 libxcb-icccm4 \
libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 \
libegl1 libgl1 libfontconfig1 libdbus-1-3 fluidsynth timgm6mb-soundfont ffmpeg"

missing=""
for p in $DEB_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = "0" ]; then
        echo "setup: installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # jackd2 asks about real-time priority in a debconf prompt; answer it up front.
        echo "jackd2 jackd/tweak_rt_limits boolean false" | debconf-set-selections || true
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "setup: missing Debian packages. Run: sudo apt-get install -y --no-install-recommends$missing" >&2
        exit 1
    fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
fi
stamp=.venv/.stamp-install
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    echo "setup: installing the project into .venv (pinned by constraints.txt)"
    # torch first and exactly pinned: any looser spec would pull a multi-GB CUDA build.
    # (pip's "Location ... is ignored" lines come from this machine's extra index config: noise, filtered.)
    .venv/bin/pip install -q -c constraints.txt "torch==2.13.0" 2>&1 | { grep -v "is ignored: it is neither" || true; }
    .venv/bin/pip install -q -c constraints.txt -e ".[train,test,bench,restore,dfn3]" 2>&1 | { grep -v "is ignored: it is neither" || true; }
    touch "$stamp"
fi
