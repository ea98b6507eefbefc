#!/usr/bin/env bash
# Set up robench on a fresh Linux machine (idempotent: a second run installs nothing).
#   1. WordNet 3.0 from Debian's packages (offline-capable; needs root or sudo)
#   2. a virtual environment in .venv with the tested, pinned stack (requirements.lock, test tools
#      included: pytest, imagecorruptions with opencv-python and scikit-image, setuptools<81);
#      torchattacks goes in with --no-deps (its requests pin conflicts with datasets')
#   3. WordNet + NLTK stopwords provisioned into robench's NLTK data dir (no NLTK downloader)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.robench-setup

log() { printf 'setup: %s\n' "$*" >&2; }

if [ ! -f /usr/share/wordnet/index.sense ] && [ ! -f "${ROBENCH_HOME:-$HOME/.cache/robench}/nltk_data/corpora/wordnet/data.noun" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    if command -v apt-get >/dev/null; then
        log "installing WordNet 3.0 (wordnet-base, wordnet-sense-index)"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wordnet-base wordnet-sense-index >/dev/null \
            || { $SUDO apt-get update -qq >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wordnet-base wordnet-sense-index >/dev/null; }
    else
        log "no apt-get: install WordNet 3.0 yourself, or online: python -c \"import nltk; nltk.download('wordnet'); nltk.download('stopwords')\""
    fi
fi

want=$(cat requirements.lock pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/robench" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    log "environment up to date ($VENV)"
else
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    log "installing the pinned stack into $VENV (a few minutes the first time)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.lock
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps torchattacks==3.5.1
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$want" > "$STAMP"
fi

"$VENV/bin/robench" doctor --fix --quick >/dev/null
log "ready: $VENV/bin/robench"
