# Baton's Airflow image: the official Apache Airflow 3.3.2 image (Python 3.11, the lock's Python),
# Debian's Chromium for the browser agents, the pinned lock and Baton. The same image runs every
# component: api-server, scheduler, dag-processor, triggerer and the Celery workers
# (docker-compose.yaml, or the official Helm chart with images.airflow.repository/tag).

# Baton and its demo are built into wheels in a stage of their own, as any package is: the wheel's build
# (setup.py) copies the pages' ECharts in from the npm lock, installed here by `npm ci` (npm checks each
# package against the lock's integrity). The image then installs the wheels, not the source.
FROM node:20-bookworm-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY include/baton/plugin/ui/package.json include/baton/plugin/ui/package-lock.json include/baton/plugin/ui/
RUN cd include/baton/plugin/ui && npm ci --omit=dev --no-audit --no-fund --loglevel=error
COPY pyproject.toml setup.py ./
COPY include include
RUN python3 -m venv /build && /build/bin/pip install --no-cache-dir build \
    && /build/bin/python -m build --wheel --outdir /wheels . \
    && /build/bin/python -m build --wheel --outdir /wheels include/demo

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

# Baton and the demo from their wheels (no editable install: the image holds what a user installs).
COPY --from=build --chown=airflow:0 /wheels /opt/baton/wheels
RUN pip install --no-cache-dir --no-deps /opt/baton/wheels/*.whl

# The demo's DAGs, baked in at Airflow's default folder (docker-compose.yaml mounts the checkout's over it);
# Baton's plugin needs no file there: the package registers it (entry point airflow.plugins). The folders
# for task logs and the browser agents' artifacts.
COPY --chown=airflow:0 dags /opt/airflow/dags
RUN mkdir -p /opt/airflow/logs /opt/airflow/baton_artifacts
ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    BATON_ARTIFACTS=/opt/airflow/baton_artifacts
