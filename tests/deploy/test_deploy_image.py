"""deploy/Dockerfile (hadolint), deploy/compose.yaml and the YAML style of everything under deploy/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from deploy_tools import DEPLOY, PROMETHEUS_DIR, REPO, promtool, run, run_ok, venv_tool

DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"


def _final_stage(text: str) -> str:
    return re.split(r"^FROM\s", text, flags=re.MULTILINE)[-1]


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    run_ok([venv_tool("hadolint"), "--no-color", str(DOCKERFILE)])


def test_hadolint_is_a_working_linter() -> None:
    # The same binary must reject a Dockerfile with known problems, so a clean result above means something.
    bad = "FROM python:latest\nRUN apt-get update && apt-get install -y curl\nADD . /app\nCMD python app.py\n"
    result = run([venv_tool("hadolint"), "--no-color", "-"], stdin=bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3015", "DL3020", "DL3025"):
        assert rule in result.stdout, result.stdout


def test_image_is_non_root_and_built_from_the_lock_file() -> None:
    text = DOCKERFILE.read_text()
    final = _final_stage(text)
    users = re.findall(r"^USER\s+(\S+)", final, flags=re.MULTILINE)
    assert users, "final stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"final USER must be a numeric non-root uid, got {users[-1]}"
    assert re.search(r"^ARG PYTHON_IMAGE=python:[\d.]+-slim-\w+$", text, flags=re.MULTILINE), "slim, pinned base"
    sync_lines = [line for line in text.splitlines() if line.startswith("RUN uv sync")]
    assert sync_lines and all("--locked" in line and "--no-dev" in line for line in sync_lines), sync_lines
    assert re.search(r'^ENTRYPOINT \["vipps-billing"\]', final, flags=re.MULTILINE)
    # Everything the build COPYs from the context exists and is let through the ignore file.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", text, flags=re.MULTILINE):
        for item in source.split():
            assert (REPO / item).exists(), f"COPY source {item} is missing from the repository"
            assert f"!{item}" in ignore or f"!{item}/" in ignore, f"{item} is excluded by Dockerfile.dockerignore"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _seconds(value: str) -> int:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", value)
    assert match and value, f"unexpected duration {value!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_compose_stack_has_every_service_wired() -> None:
    services = _compose()["services"]
    assert set(services) == {"redis", "simulator", "worker", "prometheus", "grafana"}

    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd, "Redis must persist with AOF"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])

    worker, simulator = services["worker"], services["simulator"]
    assert worker["image"] == simulator["image"], "one image for worker and simulator"
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (COMPOSE.parent / worker["build"]["context"] / worker["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert worker["command"][0] == "worker" and simulator["command"][0] == "simulator"

    env = _env(worker)
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    assert env["VIPPS_BASE_URL"] == f"http://simulator:{simulator['command'][-1]}"
    shutdown = int(env["WORKER_SHUTDOWN_TIMEOUT_SECONDS"])
    assert _seconds(worker["stop_grace_period"]) > shutdown, "grace period must exceed the worker's shutdown timeout"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_bind_mounts_exist_and_grafana_is_provisioned() -> None:
    services = _compose()["services"]
    mounts: dict[str, str] = {}
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                path = (COMPOSE.parent / source).resolve()
                assert path.exists(), f"{name} mounts missing {source}"
                mounts[target] = str(path)
    provisioning = Path(mounts["/etc/grafana/provisioning"])
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "vipps-billing.yaml").read_text())
    dashboard_dir = providers["providers"][0]["options"]["path"]
    assert dashboard_dir in mounts, "the dashboard provider path must be a mounted directory"
    assert (Path(mounts[dashboard_dir]) / "vipps-billing-worker.json").is_file()
    home = _env(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboard_dir}/vipps-billing-worker.json"


def test_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    # Point the rule glob at the repository's rules so promtool checks them as part of the config.
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert config["scrape_configs"][0]["job_name"] == "vipps-billing-worker"
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    target = tmp_path / "prometheus.yml"
    target.write_text(yaml.safe_dump(config))
    out = run_ok([promtool(), "check", "config", str(target)])
    assert "SUCCESS" in out and "rules found" in out, out


def test_yamllint_is_clean_on_deploy() -> None:
    run_ok([venv_tool("yamllint"), "--strict", "-c", str(DEPLOY / ".yamllint.yaml"), str(DEPLOY)])
