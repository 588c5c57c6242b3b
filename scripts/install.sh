#!/usr/bin/env bash
# Creates .venv and installs the pinned lock (requirements.txt) with uv, then Baton itself
# (editable), and Debian's chromium for the browser agents when it is missing. Re-runs only when
# the lock or pyproject.toml changed.
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
# The Coordination and Management pages serve their browser library (ECharts) as npm installs it from
# the committed lock: no build step. `npm ci` runs again whenever the lock is newer than what it installed;
# the pages refuse to load (naming this script) when the two differ.
ui=include/baton/plugin/ui
if [ ! -f "$ui/node_modules/.package-lock.json" ] || [ "$ui/package-lock.json" -nt "$ui/node_modules/.package-lock.json" ]; then
  (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
    || echo "npm ci in $ui failed: the Coordination and Management pages will say so." >&2
fi
# Bytecode is compiled at install time: every Airflow process (and each task process) then loads
# .pyc files instead of compiling sources, even where PYTHONDONTWRITEBYTECODE is set.
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
   || [ scripts/install.sh -nt "$stamp" ]; then
  .venv/bin/uv pip sync --quiet --compile-bytecode --python .venv/bin/python requirements.txt
  .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python --no-deps -e .
  touch "$stamp"
fi
# Baton itself is installed editable (the venv points at include/), so the lines above compile none of its
# modules: every process that imports them (an Airflow's api-server, scheduler and dag processor, each DAG
# file's parse, each `baton` command) compiled them again, about 0.2 s of CPU for the operator, the compiler,
# the monitor and the pages. Compiled here each time, with the development tools and the DAG files (under
# a second; only what changed is compiled again, and a module edited later is recompiled in memory as usual).
.venv/bin/python -m compileall -q -j 0 include devtools dags >/dev/null
# The development tools (devtools/: a running Airflow, the Celery topology, fault injection) are not part
# of the package; this checkout's venv has the repository on its path so that tests, benchmarks, scripts
# and the Airflow they start can import them (BATON_EXTENSIONS=devtools.faults).
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$PWD" > "$site/_baton_devtools.pth"
