"""deploy/k8s: every kustomization renders (kustomize), core objects validate strictly
(kubernetes-validate), KEDA objects validate against the KEDA CRD models with unknown fields
forbidden, and the worker's operational invariants hold in every overlay."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import cloudcoil.pydantic
import pydantic
import pytest
import yaml
from deploy_tools import K8S, K8S_OVERLAYS, kustomize, run, venv_tool

# Unknown keys must fail (a typo such as `minReplicas` would otherwise be silently dropped). The
# setting is inherited by the generated models, so it has to be in place before they are imported.
cloudcoil.pydantic.BaseModel.model_config["extra"] = "forbid"
from cloudcoil.models.keda import v1alpha1 as keda  # noqa: E402

KUBERNETES_VERSION = "1.30.0"
TARGETS = ("base", *(f"overlays/{name}" for name in K8S_OVERLAYS))
KEDA_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "ScaledObject": keda.ScaledObject,
    "TriggerAuthentication": keda.TriggerAuthentication,
}
COMMAND_LISTS = {"dramatiq:vipps.agreements", "dramatiq:vipps.charges"}


@cache
def rendered(target: str) -> str:
    return kustomize(K8S / target)


def objects(target: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered(target)) if doc]


def one(target: str, kind: str) -> dict[str, Any]:
    found = [doc for doc in objects(target) if doc["kind"] == kind]
    assert len(found) == 1, f"{target}: expected one {kind}, found {len(found)}"
    return found[0]


def config(target: str) -> dict[str, str]:
    data = one(target, "ConfigMap")["data"]
    assert isinstance(data, dict)
    return data


def worker_container(target: str) -> dict[str, Any]:
    containers = one(target, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["worker"]
    container: dict[str, Any] = containers[0]
    return container


@pytest.mark.parametrize("target", TARGETS)
def test_core_objects_validate_strictly(target: str) -> None:
    result = run(
        [venv_tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, "-"], stdin=rendered(target)
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    core = [doc for doc in objects(target) if doc["kind"] not in KEDA_MODELS]
    passed = re.findall(r"passed for resource (\S+)", output)
    assert len(passed) == len(core), output
    assert {doc["kind"] for doc in core} >= {"Deployment", "PodDisruptionBudget", "ConfigMap", "Service"}


def test_kubernetes_validate_rejects_a_broken_deployment() -> None:
    broken = rendered("base").replace("containerPort: 9191", "containerPort: metrics-port")
    result = run([venv_tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, "-"], stdin=broken)
    assert result.returncode != 0
    assert "containerPort" in result.stdout + result.stderr


@pytest.mark.parametrize("target", TARGETS)
def test_keda_objects_validate_against_the_crd_models(target: str) -> None:
    docs = [doc for doc in objects(target) if doc["kind"] in KEDA_MODELS]
    assert sorted(doc["kind"] for doc in docs) == ["ScaledObject", "TriggerAuthentication"]
    for doc in docs:
        KEDA_MODELS[doc["kind"]].model_validate(doc)


def test_keda_model_check_rejects_unknown_and_mistyped_fields() -> None:
    scaled = one("base", "ScaledObject")
    typo = {**scaled, "spec": {**scaled["spec"], "minReplicas": 1}}
    with pytest.raises(pydantic.ValidationError, match="minReplicas"):
        keda.ScaledObject.model_validate(typo)
    mistyped = {**scaled, "spec": {**scaled["spec"], "maxReplicaCount": "many"}}
    with pytest.raises(pydantic.ValidationError, match="maxReplicaCount"):
        keda.ScaledObject.model_validate(mistyped)


@pytest.mark.parametrize("target", TARGETS)
def test_keda_scales_the_worker_on_dramatiq_command_lists(target: str) -> None:
    scaled = one(target, "ScaledObject")["spec"]
    deployment = one(target, "Deployment")
    auth = one(target, "TriggerAuthentication")
    assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    lists = set()
    for trigger in scaled["triggers"]:
        # The trigger metadata is a free-form string map in the CRD: check the Redis scaler's keys here.
        assert trigger["type"] == "redis"
        meta = trigger["metadata"]
        assert all(isinstance(value, str) for value in meta.values()), meta
        assert re.fullmatch(r"[a-z0-9.-]+:\d+", meta["address"]), meta
        assert meta["listLength"].isdigit() and int(meta["listLength"]) > 0, meta
        assert meta.get("databaseIndex", "0").isdigit()
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
        lists.add(meta["listName"])
    assert lists == COMMAND_LISTS
    assert [ref["parameter"] for ref in auth["spec"]["secretTargetRef"]] == ["password"]


@pytest.mark.parametrize("target", TARGETS)
def test_worker_deployment_invariants(target: str) -> None:
    deployment = one(target, "Deployment")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    container = worker_container(target)
    cfg = config(target)

    assert "replicas" not in deployment["spec"], "replicas belong to the KEDA ScaledObject"
    assert spec["terminationGracePeriodSeconds"] > int(cfg["WORKER_SHUTDOWN_TIMEOUT_SECONDS"])

    port = int(cfg["METRICS_PORT"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and int(annotations["prometheus.io/port"]) == port

    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind

    security = container["securityContext"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False

    # Vipps secrets arrive as files from a Secret volume, named by *_FILE variables; never as env values.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    secret_dirs = {mounts[name] for name, volume in volumes.items() if "secret" in volume}
    for name in ("VIPPS_CLIENT_ID", "VIPPS_CLIENT_SECRET", "VIPPS_SUBSCRIPTION_KEY"):
        assert name not in cfg
        path = cfg[f"{name}_FILE"]
        assert path.rsplit("/", 1)[0] in secret_dirs, f"{name}_FILE={path} is not in a mounted Secret"
    for env in container.get("env", []):
        assert "value" not in env or not env["name"].startswith("VIPPS_"), env
    redis_url = next(env for env in container["env"] if env["name"] == "REDIS_URL")
    assert "secretKeyRef" in redis_url["valueFrom"]


@pytest.mark.parametrize("target", TARGETS)
def test_pdb_and_service_select_the_worker_pods(target: str) -> None:
    labels = one(target, "Deployment")["spec"]["template"]["metadata"]["labels"]
    pdb = one(target, "PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert ("maxUnavailable" in pdb) != ("minAvailable" in pdb)
    service = one(target, "Service")["spec"]
    assert service["selector"].items() <= labels.items()


def test_overlays_target_their_vipps_environment() -> None:
    test, production = config("overlays/test"), config("overlays/production")
    assert (test["VIPPS_ENV"], test["VIPPS_BASE_URL"]) == ("test", "https://apitest.vipps.no")
    assert (production["VIPPS_ENV"], production["VIPPS_BASE_URL"]) == ("production", "https://api.vipps.no")
    namespaces = {one(f"overlays/{name}", "Deployment")["metadata"]["namespace"] for name in K8S_OVERLAYS}
    assert len(namespaces) == len(K8S_OVERLAYS)
    assert one("overlays/production", "ScaledObject")["spec"]["minReplicaCount"] >= 2
    assert one("overlays/production", "PodDisruptionBudget")["spec"]["minAvailable"] == 1
