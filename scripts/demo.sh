#!/usr/bin/env bash
# Install neuroflow from this checkout and run the main job: the article's glasses
# experiment on avatars it draws itself (offline, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check .
python3 -m neuroflow demo "$@"
