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
    """What compose makes of `${VAR:-default}` when VAR is unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


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
    assert services["temporal-ui"]["ports"] == ["8233:8080"]
    assert services["api"]["ports"] == ["8000:8000"]
    assert services["temporal"]["ports"] == ["7233:7233"]
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
