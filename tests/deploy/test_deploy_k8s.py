"""deploy/k8s: every kustomization renders (kustomize), core objects validate strictly
(kubernetes-validate), KEDA objects validate against the KEDA CRD models with unknown fields
forbidden, and the worker's, the webhook receiver's and the support console's operational invariants hold
in every overlay: the Ingress routes the registered URL to the receiver and nothing else, NetworkPolicies
leave worker pods reachable for metrics scrapes only, and the console is internal (probed and scraped on its
operations port), reachable from outside only through the SSO Ingress example once an overlay adds it."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cloudcoil.pydantic
import pydantic
import pytest
import yaml
from deploy_tools import K8S, K8S_OVERLAYS, K8S_VARIANTS, kustomize, run, venv_tool

# Unknown keys must fail (a typo such as `minReplicas` would otherwise be silently dropped). The
# setting is inherited by the generated models, so it has to be in place before they are imported.
cloudcoil.pydantic.BaseModel.model_config["extra"] = "forbid"
from cloudcoil.models.keda import v1alpha1 as keda  # noqa: E402

KUBERNETES_VERSION = "1.30.0"
TARGETS = ("base", *(f"overlays/{name}" for name in (*K8S_OVERLAYS, *K8S_VARIANTS)))
KEDA_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "ScaledObject": keda.ScaledObject,
    "TriggerAuthentication": keda.TriggerAuthentication,
}
COMMAND_LISTS = {"dramatiq:vipps.agreements", "dramatiq:vipps.charges"}
WORKER, RECEIVER, CONSOLE = "vipps-billing-worker", "vipps-billing-webhooks", "vipps-billing-console"
WORKER_CONFIG, RECEIVER_CONFIG = "vipps-billing-worker-config", "vipps-billing-webhooks-config"
CONSOLE_CONFIG = "vipps-billing-console-config"
SSO_INGRESS = K8S / "components" / "console-sso-ingress"


@cache
def rendered(target: str) -> str:
    return kustomize(K8S / target)


def objects(target: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered(target)) if doc]


def one(target: str, kind: str, name: str | None = None) -> dict[str, Any]:
    """The object of a kind (with that name, or the generated name that starts with it, for ConfigMaps)."""
    found = [doc for doc in objects(target) if doc["kind"] == kind and (
        name is None or doc["metadata"]["name"] == name or doc["metadata"]["name"].startswith(f"{name}-"))]
    assert len(found) == 1, f"{target}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def config(target: str, name: str = WORKER_CONFIG) -> dict[str, str]:
    data = one(target, "ConfigMap", name)["data"]
    assert isinstance(data, dict)
    return data


def container_of(target: str, deployment: str, name: str) -> dict[str, Any]:
    containers = one(target, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == [name]
    container: dict[str, Any] = containers[0]
    return container


def worker_container(target: str) -> dict[str, Any]:
    return container_of(target, WORKER, "worker")


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
    assert {doc["kind"] for doc in core} >= {"Deployment", "PodDisruptionBudget", "ConfigMap", "Service", "Ingress",
                                            "NetworkPolicy"}


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
    deployment = one(target, "Deployment", WORKER)
    auth = one(target, "TriggerAuthentication")
    assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    lists = set()
    for trigger in scaled["triggers"]:
        # The trigger metadata is a free-form string map in the CRD: check the Redis scaler's keys here.
        assert trigger["type"] in ("redis", "redis-sentinel")
        meta = trigger["metadata"]
        assert all(isinstance(value, str) for value in meta.values()), meta
        if trigger["type"] == "redis":
            assert re.fullmatch(r"[a-z0-9.-]+:\d+", meta["address"]), meta
        else:
            assert re.fullmatch(r"[a-z0-9.-]+:\d+(,[a-z0-9.-]+:\d+)*", meta["addresses"]) and meta["sentinelMaster"]
        assert meta["listLength"].isdigit() and int(meta["listLength"]) > 0, meta
        assert meta.get("databaseIndex", "0").isdigit()
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
        lists.add(meta["listName"])
    assert lists == COMMAND_LISTS
    sentinel = any(trigger["type"] == "redis-sentinel" for trigger in scaled["triggers"])
    assert [ref["parameter"] for ref in auth["spec"]["secretTargetRef"]] == (
        ["password", "sentinelPassword"] if sentinel else ["password"])


@pytest.mark.parametrize("target", TARGETS)
def test_worker_deployment_invariants(target: str) -> None:
    deployment = one(target, "Deployment", WORKER)
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
@pytest.mark.parametrize("name", [WORKER, RECEIVER, CONSOLE])
def test_pdb_and_service_select_their_pods_only(target: str, name: str) -> None:
    labels = one(target, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
    pdb = one(target, "PodDisruptionBudget", name)["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert ("maxUnavailable" in pdb) != ("minAvailable" in pdb)
    service = one(target, "Service", name)["spec"]
    assert service["selector"].items() <= labels.items()
    for other in {WORKER, RECEIVER, CONSOLE} - {name}:
        other_labels = one(target, "Deployment", other)["spec"]["template"]["metadata"]["labels"]
        assert not service["selector"].items() <= other_labels.items()
        assert not pdb["selector"]["matchLabels"].items() <= other_labels.items()


def test_overlays_target_their_vipps_environment() -> None:
    test, production = config("overlays/test"), config("overlays/production")
    assert (test["VIPPS_ENV"], test["VIPPS_BASE_URL"]) == ("test", "https://apitest.vipps.no")
    assert (production["VIPPS_ENV"], production["VIPPS_BASE_URL"]) == ("production", "https://api.vipps.no")
    namespaces = {one(f"overlays/{name}", "Deployment", WORKER)["metadata"]["namespace"] for name in K8S_OVERLAYS}
    assert len(namespaces) == len(K8S_OVERLAYS)
    assert one("overlays/production", "ScaledObject")["spec"]["minReplicaCount"] >= 2
    assert one("overlays/production", "PodDisruptionBudget", WORKER)["spec"]["minAvailable"] == 1
    hosts = {urlsplit(config(f"overlays/{name}", RECEIVER_CONFIG)["WEBHOOK_PUBLIC_URL"]).hostname
             for name in K8S_OVERLAYS}
    assert len(hosts) == len(K8S_OVERLAYS), "test and production registrations need their own URLs"


def pod_labels(target: str, deployment: str) -> dict[str, str]:
    labels: dict[str, str] = one(target, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("target", TARGETS)
def test_receiver_deployment_invariants(target: str) -> None:
    deployment = one(target, "Deployment", RECEIVER)
    spec = deployment["spec"]["template"]["spec"]
    container = container_of(target, RECEIVER, "webhooks")
    cfg = config(target, RECEIVER_CONFIG)

    assert container["args"] == ["webhooks", "serve"]
    assert deployment["spec"]["replicas"] >= 2, "one receiver down must not fail Vipps's deliveries"
    assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == [
        one(target, "ConfigMap", RECEIVER_CONFIG)["metadata"]["name"]]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(cfg["WEBHOOK_PORT"]), "metrics": int(cfg["WEBHOOK_METRICS_PORT"])}
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]

    # The webhook secrets come from a mounted Secret; the receiver holds no Vipps API credentials.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "secret" in volumes[mounts[cfg["WEBHOOK_SECRETS_DIR"]]]
    assert not any(name.startswith("VIPPS_") for name in cfg)
    assert not any(env["name"].startswith("VIPPS_") for env in container.get("env", []))
    redis_url = next(env for env in container["env"] if env["name"] == "REDIS_URL")
    assert "secretKeyRef" in redis_url["valueFrom"]

    security = container["securityContext"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["automountServiceAccountToken"] is False
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind


@pytest.mark.parametrize("target", TARGETS)
def test_the_ingress_routes_the_registered_url_to_the_receiver_only(target: str) -> None:
    ingress = one(target, "Ingress")
    public = urlsplit(config(target, RECEIVER_CONFIG)["WEBHOOK_PUBLIC_URL"])
    assert public.scheme == "https"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == public.hostname
    assert any(public.hostname in tls["hosts"] for tls in ingress["spec"]["tls"])
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == (public.path, "Exact")
    backend = path["backend"]["service"]
    assert (backend["name"], backend["port"]) == (RECEIVER, {"name": "http"})
    service = one(target, "Service", RECEIVER)["spec"]
    http = next(p for p in service["ports"] if p["name"] == "http")
    assert http["targetPort"] == "http"
    assert service["selector"].items() <= pod_labels(target, RECEIVER).items()
    body_size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(body_size.removesuffix("k")) * 1024 == int(config(target, RECEIVER_CONFIG)["WEBHOOK_MAX_BODY_BYTES"])


def allowed(target: str, deployment: str) -> set[tuple[str, str]]:
    """(namespace, port name) pairs that may connect to a Deployment's pods, over every NetworkPolicy that
    selects them; a rule that would let in more than a whole named namespace fails here."""
    labels = pod_labels(target, deployment)
    found: set[tuple[str, str]] = set()
    policies = [p for p in objects(target) if p["kind"] == "NetworkPolicy"
                and p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
    assert policies, f"{deployment}: no NetworkPolicy selects its pods"
    for policy in policies:
        assert "Ingress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from") and rule.get("ports"), f"{policy['metadata']['name']}: a rule open to all"
            for peer in rule["from"]:
                assert set(peer) == {"namespaceSelector"}, peer  # no ipBlock, no cross-namespace pod guess
                namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                found |= {(namespace, port["port"]) for port in rule["ports"]}
    return found


@pytest.mark.parametrize("target", TARGETS)
def test_network_policies_keep_worker_pods_unreachable_from_outside(target: str) -> None:
    assert allowed(target, WORKER) == {("monitoring", "metrics")}
    assert allowed(target, RECEIVER) == {("ingress-nginx", "http"), ("monitoring", "metrics")}
    assert allowed(target, CONSOLE) == {("ingress-nginx", "http"), ("monitoring", "metrics")}
    worker_ports = {p["name"] for p in worker_container(target)["ports"]}
    receiver_ports = {p["name"] for p in container_of(target, RECEIVER, "webhooks")["ports"]}
    assert worker_ports >= {"metrics"} and receiver_ports >= {"http", "metrics"}


def console_config(target: str) -> dict[str, str]:
    return config(target, CONSOLE_CONFIG)


@pytest.mark.parametrize("target", TARGETS)
def test_console_deployment_invariants(target: str) -> None:
    deployment = one(target, "Deployment", CONSOLE)
    spec = deployment["spec"]["template"]["spec"]
    container = container_of(target, CONSOLE, "console")
    cfg, worker_cfg = console_config(target), config(target)

    assert container["args"] == ["console", "serve"]
    # Failed logins and revoked sessions are in Redis: two replicas, and a PDB keeps one up.
    assert deployment["spec"]["replicas"] >= 2
    # The worker's config first (the same Redis keys and merchants), then the console's own settings.
    assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == [
        one(target, "ConfigMap", name)["metadata"]["name"] for name in (WORKER_CONFIG, CONSOLE_CONFIG)]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(cfg["CONSOLE_PORT"]), "metrics": int(cfg["CONSOLE_METRICS_PORT"])}
    assert ports["http"] != ports["metrics"] and cfg["CONSOLE_HOST"] == "0.0.0.0"
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and int(annotations["prometheus.io/port"]) == ports["metrics"]

    # Secure cookies; the users, the session key and the Vipps keys are files of mounted Secrets, never values.
    assert cfg["CONSOLE_COOKIE_SECURE"] == "true"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for name, path in [(n, cfg[n]) for n in ("CONSOLE_USERS_FILE", "CONSOLE_SESSION_SECRET_FILE")] + [
            (n, worker_cfg[n]) for n in ("VIPPS_CLIENT_ID_FILE", "VIPPS_CLIENT_SECRET_FILE",
                                         "VIPPS_SUBSCRIPTION_KEY_FILE")]:
        assert "secret" in volumes[mounts[path.rsplit("/", 1)[0]]], f"{name}={path} is not in a mounted Secret"
    env = {e["name"]: e for e in container.get("env", [])}
    assert not {"CONSOLE_SESSION_SECRET", "VIPPS_CLIENT_SECRET"} & (set(env) | set(cfg) | set(worker_cfg))
    assert "secretKeyRef" in env["REDIS_URL"]["valueFrom"]

    security = container["securityContext"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["automountServiceAccountToken"] is False
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind


@pytest.mark.parametrize("target", TARGETS)
def test_the_console_is_internal_unless_an_overlay_adds_the_sso_ingress(target: str) -> None:
    labels = pod_labels(target, CONSOLE)
    service = one(target, "Service", CONSOLE)["spec"]
    assert service["selector"].items() <= labels.items()
    assert {p["name"]: p["targetPort"] for p in service["ports"]} == {"http": "http", "metrics": "metrics"}
    for other in (doc for doc in objects(target) if doc["kind"] == "Service"):
        if other["spec"].get("selector", {}).items() <= labels.items():
            spec = other["spec"]
            assert spec.get("type", "ClusterIP") == "ClusterIP", other["metadata"]["name"]
            assert not any("nodePort" in p for p in spec["ports"]), other["metadata"]["name"]
            assert not {"externalIPs", "loadBalancerIP", "loadBalancerSourceRanges"} & set(spec)
    backends = {path["backend"]["service"]["name"] for doc in objects(target) if doc["kind"] == "Ingress"
                for rule in doc["spec"]["rules"] for path in rule["http"]["paths"]}
    assert CONSOLE not in backends, "the SSO Ingress is an example an overlay opts into"


def egress(target: str, deployment: str) -> list[dict[str, Any]]:
    labels = pod_labels(target, deployment)
    return [rule for p in objects(target) if p["kind"] == "NetworkPolicy"
            and p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
            and "Egress" in p["spec"]["policyTypes"] for rule in p["spec"].get("egress", [])]


@pytest.mark.parametrize("target", TARGETS)
def test_the_console_may_connect_to_dns_redis_and_vipps_https_only(target: str) -> None:
    rules = egress(target, CONSOLE)
    assert rules and all(rule.get("ports") for rule in rules), "an egress rule open on every port"
    ports = {(port["port"], port["protocol"]) for rule in rules for port in rule["ports"]}
    sentinel = "REDIS_SENTINEL_PASSWORD_FILE" in config(target)
    assert ports == {(53, "UDP"), (53, "TCP"), (6379, "TCP"), (443, "TCP")} | ({(26379, "TCP")} if sentinel else set())
    [https] = [rule for rule in rules if [p["port"] for p in rule["ports"]] == [443]]
    [block] = [peer["ipBlock"] for peer in https["to"]]
    assert block["cidr"] == "0.0.0.0/0" and set(block["except"]) >= {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
    [dns] = [rule for rule in rules if {p["port"] for p in rule["ports"]} == {53}]
    assert [peer["namespaceSelector"]["matchLabels"] for peer in dns["to"]] == [
        {"kubernetes.io/metadata.name": "kube-system"}]


@pytest.mark.parametrize("target", ["base", "overlays/production"])
def test_the_sso_ingress_example_validates_and_routes_the_pages_only(target: str, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "console-example",
        "resources": [os.path.relpath(K8S / target, overlay)], "components": [os.path.relpath(SSO_INGRESS, overlay)]}))
    text = kustomize(overlay)
    result = run([venv_tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, "-"], stdin=text)
    assert result.returncode == 0 and "passed for resource ingress/vipps-billing-console" in result.stdout, (
        result.stdout + result.stderr)
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    [ingress] = [doc for doc in docs if doc["kind"] == "Ingress" and doc["metadata"]["name"] == CONSOLE]
    annotations = ingress["metadata"]["annotations"]
    auth, signin = (urlsplit(annotations[f"nginx.ingress.kubernetes.io/{key}"]) for key in ("auth-url", "auth-signin"))
    assert auth.scheme in ("http", "https") and auth.hostname and signin.scheme == "https" and signin.hostname
    assert "$escaped_request_uri" in signin.query, "a signed-in browser must come back to the page it asked for"
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    [rule] = ingress["spec"]["rules"]
    assert any(rule["host"] in tls["hosts"] and tls["secretName"] for tls in ingress["spec"]["tls"])
    backends = [path["backend"]["service"] for path in rule["http"]["paths"]]
    assert backends == [{"name": CONSOLE, "port": {"name": "http"}}], "only the pages, never metrics"
