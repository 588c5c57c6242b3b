#!/usr/bin/env bash
# Creates .venv and installs the pinned lock (requirements.txt) with uv, then Baton and its demo as a user
# installs them: built into wheels (baton, with the pages' ECharts copied in from the npm lock: setup.py;
# baton-demo, include/demo) and installed from those, not editable, so that what the tests run is what a
# wheel carries. Debian's chromium for the browser agents when it is missing. Each step re-runs only when
# what it installs from changed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(command -v python3.11 || command -v python3)
stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet "$(grep -E '^uv==' requirements.txt)"
fi
# Browser agents drive Debian's Chromium (Playwright's own browser download does not work here).
if [ ! -x /usr/bin/chromium ]; then
  sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $sudo apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null; } \
    || echo "Could not install Debian's chromium: the browser tests will fail." >&2
fi
# The pages' browser library (ECharts) comes from the committed npm lock: `npm ci` runs again whenever the
# lock is newer than what it installed, and the wheel's build copies it in (setup.py).
ui=include/baton/plugin/ui
if [ ! -f "$ui/node_modules/.package-lock.json" ] || [ "$ui/package-lock.json" -nt "$ui/node_modules/.package-lock.json" ]; then
  (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
    || echo "npm ci in $ui failed: Baton's wheel cannot be built without ECharts." >&2
fi
# Bytecode is compiled at install time: every Airflow process (and each task process) then loads
# .pyc files instead of compiling sources, even where PYTHONDONTWRITEBYTECODE is set.
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ scripts/install.sh -nt "$stamp" ]; then
  .venv/bin/uv pip sync --quiet --compile-bytecode --python .venv/bin/python requirements.txt
  rm -f .venv/.baton-sources
  touch "$stamp"
fi
# Baton and the demo, from wheels built of this checkout, whenever a file they are built from changed (its
# content: a checkout's modification times say nothing of it). Stale build folders go first: setuptools
# copies into build/lib without removing what is gone, and a deleted module would stay in the wheel.
sources=$(find include setup.py pyproject.toml -type f -not -path '*/node_modules/*' -not -path '*/__pycache__/*' \
  -not -path '*.egg-info/*' -not -path 'include/demo/build/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum \
  | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.baton-sources 2>/dev/null)" != "$sources" ]; then
  rm -rf build include/baton.egg-info include/demo/build include/demo/baton_demo.egg-info
  wheels=$(mktemp -d)
  .venv/bin/uv build --quiet --wheel --out-dir "$wheels" .
  .venv/bin/uv build --quiet --wheel --out-dir "$wheels" include/demo
  rm -rf build include/baton.egg-info include/demo/build include/demo/baton_demo.egg-info
  # Not --compile-bytecode: uv then compiles the whole environment again (40 CPU-s here), not the two packages.
  .venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps --reinstall \
    "$wheels"/baton-*.whl "$wheels"/baton_demo-*.whl
  .venv/bin/python -I -c 'import compileall, importlib.util as u, sys
sys.exit(not all(compileall.compile_dir(u.find_spec(p).submodule_search_locations[0], quiet=2, workers=0)
                 for p in ("baton", "demo")))'
  rm -rf "$wheels"
  echo "$sources" > .venv/.baton-sources
fi
# The development tools and the DAG files, compiled too (under a second; only what changed is compiled).
.venv/bin/python -m compileall -q -j 0 devtools dags >/dev/null
# The development tools (devtools/: a running Airflow, the Celery topology, fault injection) are not part
# of the package; this checkout's venv has the repository on its path so that tests, benchmarks, scripts
# and the Airflow they start can import them (BATON_EXTENSIONS=devtools.faults).
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$PWD" > "$site/_baton_devtools.pth"
