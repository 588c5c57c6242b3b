# Baton's Airflow image: the official Apache Airflow 3.3.2 image (Python 3.11, the lock's Python),
# Debian's Chromium for the browser agents, the pinned lock and Baton. The same image runs every
# component: api-server, scheduler, dag-processor, triggerer and the Celery workers
# (docker-compose.yaml, or the official Helm chart with images.airflow.repository/tag).

# The Coordination and Management pages serve ECharts as npm installs it from the committed lock
# (include/baton/plugin/pages.py checks the version); installed here, in a stage of its own, so that
# the image never depends on a checkout having run `npm ci` (.dockerignore leaves node_modules out).
FROM node:20-bookworm-slim AS ui
WORKDIR /ui
COPY include/baton/plugin/ui/package.json include/baton/plugin/ui/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

FROM apache/airflow:3.3.2-python3.11

# Browser agents drive Debian's Chromium at /usr/bin/chromium (include/baton/browser/session.py);
# Playwright's own browser download is not used.
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-liberation \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# The airflow user installs into its own site-packages, as the base image expects. The lock pins
# apache-airflow==3.3.2, the image's version; naming it again makes pip fail rather than replace
# Airflow if the lock and the base image ever disagree.
USER airflow
COPY --chown=airflow:0 requirements.txt /opt/baton/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/baton/requirements.txt

# Baton itself, editable: the package finds its demo data next to it (include/demo, importable as
# `demo`), which a wheel in site-packages would not carry. Nothing reads BATON_ROOT at run time.
COPY --chown=airflow:0 pyproject.toml /opt/baton/pyproject.toml
COPY --chown=airflow:0 include /opt/baton/include
COPY --from=ui --chown=airflow:0 /ui/node_modules /opt/baton/include/baton/plugin/ui/node_modules
RUN pip install --no-cache-dir --no-deps -e /opt/baton

# The DAGs and the plugin, baked in at Airflow's default folders (docker-compose.yaml mounts the
# checkout's over them); the folders for task logs and the browser agents' artifacts.
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
RUN mkdir -p /opt/airflow/logs /opt/airflow/baton_artifacts
ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    BATON_ARTIFACTS=/opt/airflow/baton_artifacts
