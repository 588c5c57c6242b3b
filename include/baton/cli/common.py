"""What the commands share: the dags folder they read."""

from __future__ import annotations

import os
from pathlib import Path


def dags_folder() -> Path:
    """The dags folder of this Airflow (AIRFLOW__CORE__DAGS_FOLDER), or ./dags."""
    return Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or "dags")
