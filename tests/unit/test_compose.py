"""The distributed shape (docker-compose.yml, Dockerfile) parsed and checked for its wiring.

No Docker engine runs here, so these tests read the files: pinned images, the services
the spec names, a scalable worker, and every app process pointed at the right servers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from stack.search_attributes import ORDER_SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("worker", "api", "carrier-simulator", "migrate")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def with_defaults(value: str) -> str:
    """What compose makes of `${VAR:-default}` when VAR is unset, and of a required
    `${VAR:?message}` when .env sets it (a stand-in value)."""
    value = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)
    return re.sub(r"\$\{([A-Z0-9_]+):\?[^}]*\}", r"from-env-\1", value)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: with_defaults(str(value)) for key, value in env.items()}


def test_every_image_is_pinned_to_a_version(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and "$" not in tag, f"{name}: {image} is not pinned"
        assert re.search(r"\d+\.\d+", tag), f"{name}: {image} names no version"


def test_the_services_of_the_distributed_shape_are_there(
    services: dict[str, dict[str, Any]],
) -> None:
    wanted = {"postgresql", "temporal", "temporal-setup", "temporal-ui", "worker", "api"}
    wanted |= {"migrate", "carrier-simulator"}
    assert wanted <= set(services)
    assert services["temporal"]["image"].startswith("temporalio/")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert services["postgresql"]["image"].startswith("postgres:")


def test_worker_is_scalable(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["command"] == ["orderflow", "worker"]
    # A fixed container name anywhere would break `docker compose up` of a second project.
    assert not [name for name, s in services.items() if "container_name" in s]


def test_app_processes_are_built_from_the_project_image(
    services: dict[str, dict[str, Any]],
) -> None:
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    for name in APP_SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["command"] == ["orderflow", name]


def test_worker_and_api_point_at_temporal_and_the_app_database(
    services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    init_sql = compose["configs"]["orderflow-database"]["content"]
    for name in ("worker", "api", "migrate"):
        env = env_of(services[name])
        host, _, port = env["TEMPORAL_ADDRESS"].partition(":")
        assert host == "temporal" and port == "7233"

        url = urlsplit(env["DATABASE_URL"])
        assert url.scheme in ("postgresql", "postgres")
        assert url.hostname == "postgresql" and url.port == 5432
        database = url.path.lstrip("/")
        # The shop's own database and role, not Temporal's.
        assert database == "orderflow"
        assert url.username == "orderflow"
        assert f"CREATE DATABASE {database} OWNER {url.username}" in init_sql
        assert f"CREATE ROLE {url.username} LOGIN" in init_sql


def test_temporal_uses_the_postgresql_service(services: dict[str, dict[str, Any]]) -> None:
    temporal = env_of(services["temporal"])
    postgresql = env_of(services["postgresql"])
    assert temporal["DB"].startswith("postgres")
    assert temporal["POSTGRES_SEEDS"] == "postgresql"
    assert temporal["POSTGRES_USER"] == postgresql["POSTGRES_USER"]
    assert temporal["POSTGRES_PWD"] == postgresql["POSTGRES_PASSWORD"]
    init_target = services["postgresql"]["configs"][0]["target"]
    assert init_target.startswith("/docker-entrypoint-initdb.d/")


def test_ports_of_the_spec(services: dict[str, dict[str, Any]]) -> None:
    assert services["temporal-ui"]["ports"] == ["127.0.0.1:8233:8080"]
    assert services["api"]["ports"] == ["8000:8000"]
    assert services["temporal"]["ports"] == ["127.0.0.1:7233:7233"]
    assert env_of(services["temporal-ui"])["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env_of(services["api"])["ORDERFLOW_API_HOST"] == "0.0.0.0"


def test_start_order_waits_for_healthy_dependencies(
    services: dict[str, dict[str, Any]],
) -> None:
    def condition(service: str, on: str) -> str:
        return services[service]["depends_on"][on]["condition"]

    for name in ("worker", "api"):
        assert condition(name, "postgresql") == "service_healthy"
        assert condition(name, "temporal") == "service_healthy"
        assert condition(name, "temporal-setup") == "service_completed_successfully"
        assert condition(name, "migrate") == "service_completed_successfully"
    assert condition("migrate", "postgresql") == "service_healthy"
    assert condition("temporal", "postgresql") == "service_healthy"
    assert condition("temporal-setup", "temporal") == "service_healthy"
    assert condition("temporal-ui", "temporal") == "service_healthy"
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


def test_setup_registers_exactly_the_order_search_attributes(
    services: dict[str, dict[str, Any]],
) -> None:
    script = " ".join(services["temporal-setup"]["command"])
    loop = re.search(r"for attribute in ([^;]+);", script)
    assert loop is not None
    registered = dict(pair.split("=") for pair in loop.group(1).split())
    assert registered == ORDER_SEARCH_ATTRIBUTES
    assert "search-attribute create" in script


def test_dockerfile_installs_the_project_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    instructions = [
        line.strip() for line in dockerfile.splitlines() if line.strip() and line[0] != "#"
    ]
    base = next(line for line in instructions if line.startswith("FROM"))
    assert re.fullmatch(r"FROM python:3\.11\.\d+-slim(-\w+)?", base)
    assert any(re.fullmatch(r"RUN pip install (/app|\.)", line) for line in instructions)
    users = [line.split()[1] for line in instructions if line.startswith("USER")]
    assert users and users[-1] not in ("root", "0")

    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".orderflow", ".git", ".env"} <= set(ignored)


# ---------------------------------------------------------------- closed by default
# Names of variables that hold a password, a secret, a token or a key.
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|_KEY(S)?(_|$)|_PWD$")


def _compose_text() -> str:
    return (ROOT / "docker-compose.yml").read_text()


def _interpolated(text: str) -> list[tuple[str, str, str]]:
    """Every `${VAR}`, `${VAR:-default}` and `${VAR:?message}`: (name, operator, rest)."""
    return re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}", text)


def _env_example() -> str:
    return (ROOT / ".env.example").read_text()


def test_app_processes_run_in_production_mode(services: dict[str, dict[str, Any]]) -> None:
    for name in (*APP_SERVICES, "psp-simulator", "mail-server"):
        # Fixed, not `${ORDERFLOW_MODE:-...}`: an unset variable never opens development mode.
        assert services[name]["environment"]["ORDERFLOW_MODE"] == "production", name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ENV ORDERFLOW_MODE=production$", dockerfile, re.MULTILINE)


def test_no_secret_has_a_default_value(services: dict[str, dict[str, Any]]) -> None:
    text = _compose_text()
    assert "dev-" not in text
    for name, operator, rest in _interpolated(text):
        if SECRET_NAME.search(name):
            # Required (compose refuses to start without it), or optional and empty.
            assert operator == ":?" or (operator == ":-" and rest == ""), (name, operator, rest)
    for service_name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert "${" in str(value), f"{service_name}: {key} is written in the file"
    # Every secret the production check demands is required by compose.
    required = {name for name, operator, _ in _interpolated(text) if operator == ":?"}
    assert {
        "ORDERFLOW_DB_PASSWORD",
        "TEMPORAL_DB_PASSWORD",
        "ORDERFLOW_CUSTOMER_TOKEN_SECRET",
        "ORDERFLOW_API_TOKENS",
        "ORDERFLOW_CARRIER_WEBHOOK_SECRETS",
        "ORDERFLOW_PAYLOAD_KEYS",
        "ORDERFLOW_PAYLOAD_KEY_ID",
        "ORDERFLOW_PSP_API_KEY",
        "ORDERFLOW_PSP_WEBHOOK_SECRET",
    } <= required


def test_temporal_and_postgresql_are_published_on_localhost_only(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("temporal", "temporal-ui", "postgresql"):
        for port in services[name].get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"
    # The API is the one service meant to be reached from outside.
    published = {name for name, service in services.items() if service.get("ports")}
    for name in published - {"api"}:
        assert all(str(p).startswith("127.0.0.1:") for p in services[name]["ports"]), name


def test_every_variable_of_compose_is_listed_in_env_example() -> None:
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", _env_example(), re.MULTILINE))
    used = {name for name, _, _ in _interpolated(_compose_text())}
    assert used <= listed, used - listed
    required = {name for name, operator, _ in _interpolated(_compose_text()) if operator == ":?"}
    # Required ones are uncommented lines, so a copied .env names them all.
    uncommented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", _env_example(), re.MULTILINE))
    assert required <= uncommented, required - uncommented
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored


def test_env_example_filled_as_it_says_passes_the_production_check(tmp_path: Path) -> None:
    """Each empty value generated with the command its comment gives (the nearest one
    above it), then read by Settings: the names are the settings' own and the values pass."""
    import contextlib
    import io

    from orderflow.settings import Settings

    command = None
    filled = []
    for line in _env_example().splitlines():
        found = re.search(r"python -c \"(.*)\"$", line)
        if found:
            command = found.group(1)
        empty = re.fullmatch(r"([A-Z][A-Z0-9_]*)=", line)
        if empty:
            assert command, f"no command above {empty.group(1)}"
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(command, {})
            line = f"{empty.group(1)}={out.getvalue().strip()}"
        filled.append(line)
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(filled) + "\n")

    settings = Settings(_env_file=env_file, mode="production")  # type: ignore[call-arg]
    assert settings.production_problems() == []
    # And with an empty one, the check names it.
    env_file.write_text(_env_example())
    refused = Settings(_env_file=env_file, mode="production")  # type: ignore[call-arg]
    assert (
        "ORDERFLOW_CUSTOMER_TOKEN_SECRET is the development default"
        in refused.production_problems()
    )


def test_prometheus_scrapes_the_api_with_its_token_and_every_worker(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    prometheus = services["prometheus"]
    assert [p for p in prometheus["ports"]] == ["127.0.0.1:9090:9090"]
    (mounted,) = prometheus["configs"]
    assert mounted["target"] in " ".join(prometheus["command"])
    config = yaml.safe_load(with_defaults(compose["configs"][mounted["source"]]["content"]))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    api = jobs["orderflow-api"]
    api_env = env_of(services["api"])
    assert api["static_configs"][0]["targets"] == [f"api:{api_env['ORDERFLOW_API_PORT']}"]
    assert api["metrics_path"] == "/metrics"
    # The same token the API accepts for metrics, from .env, never the admin's.
    assert api["authorization"]["type"] == "Bearer"
    assert api["authorization"]["credentials"] == api_env["ORDERFLOW_METRICS_TOKEN"]
    assert api["authorization"]["credentials"] == "from-env-ORDERFLOW_METRICS_TOKEN"

    worker = jobs["orderflow-worker"]
    (discovery,) = worker["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and discovery["type"] == "A"
    worker_env = env_of(services["worker"])
    assert discovery["port"] == int(worker_env["ORDERFLOW_WORKER_METRICS_PORT"])
    # Reachable from Prometheus' container, published to no one.
    assert worker_env["ORDERFLOW_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert "ports" not in services["worker"]
    # The worker keeps every other setting of the app processes.
    assert worker_env["DATABASE_URL"] == env_of(services["api"])["DATABASE_URL"]
