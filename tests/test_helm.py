"""The Helm chart, rendered without a cluster.

Every rendering (default values and each ci/*-values.yaml) passes `helm lint
--strict` and the Kubernetes schemas of the oldest and newest versions it
supports (kubernetes-validate, strict); the assertions pin what operators rely
on: gRPC probes and drain, locked-down pods, keys only by reference, the
Indexed Job, autoscaling, and pods that roll when their configuration changes.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from xling.service.config import Settings

from .conftest import find_tool

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "xling"
CI_VALUES = sorted(path.name for path in (CHART / "ci").glob("*-values.yaml"))
SCENARIOS = ["default", *CI_VALUES]
# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ("1.29.0", "1.37.0")
CRD_KINDS = {"ServiceMonitor"}
RELEASE = "rel"
FULLNAME = "rel-xling"
TEST_API_KEY = "ci-test-key-0123456789"  # ci/replicated-values.yaml
GRPC_PORT = 50051
WORKLOADS = {"Deployment", "StatefulSet", "Job", "CronJob", "Pod"}
STABLE_SELECTOR_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
}
# Settings the chart derives from its own values; `config` may not set them.
CHART_MANAGED_SETTINGS = {
    "host", "port", "data_dir", "model_dir", "grace_period_s", "omp_num_threads", "workers",
    "local_threads", "chat_backend", "mistral_api_key", "mistral_server_url", "mistral_model",
    "api_keys", "api_keys_file", "index_role", "snapshot_dir", "metrics_port",
    "tls_cert_file", "tls_key_file", "tls_client_ca_file", "index_backend", "postgres_dsn",
    "postgres_dsn_file", "postgres_pool_size",
}  # fmt: skip


@dataclass(frozen=True)
class Helm:
    binary: str
    home: str

    def run(self, *args: str, chart: Path = CHART) -> subprocess.CompletedProcess:
        # A private home keeps helm off the user's repositories, plugins and cluster.
        env = {
            **os.environ,
            "HELM_CACHE_HOME": f"{self.home}/cache",
            "HELM_CONFIG_HOME": f"{self.home}/config",
            "HELM_DATA_HOME": f"{self.home}/data",
            "KUBECONFIG": f"{self.home}/kubeconfig",
        }
        return subprocess.run(
            [self.binary, *args, str(chart)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env=env,
        )


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(find_tool("helm"), str(tmp_path_factory.mktemp("helm-home")))


def values_args(scenario: str) -> list[str]:
    return [] if scenario == "default" else ["--values", str(CHART / "ci" / scenario)]


@functools.cache
def _render(helm: Helm, args: tuple[str, ...], kube_version: str) -> str:
    result = helm.run(
        "template", RELEASE, "--namespace", "xling", "--kube-version", kube_version, *args
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(helm: Helm, *args: str, kube_version: str = KUBE_VERSIONS[-1]) -> list[dict]:
    text = _render(helm, args, kube_version)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def one(docs: list[dict], kind: str, name: str | None = None, component: str | None = None) -> dict:
    found = [
        d
        for d in docs
        if d["kind"] == kind
        and name in (None, d["metadata"]["name"])
        and component in (None, d["metadata"]["labels"].get("app.kubernetes.io/component"))
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or component or ''}"
    return found[0]


def pod_spec(doc: dict) -> dict:
    spec = doc["spec"]
    if doc["kind"] == "Pod":
        return spec
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def pod_labels(doc: dict) -> dict:
    if doc["kind"] == "Pod":
        return doc["metadata"]["labels"]
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return spec["template"]["metadata"]["labels"]


def env_of(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def config_map(docs: list[dict]) -> dict[str, str]:
    return one(docs, "ConfigMap")["data"]


def servers(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}]


# Lint and Kubernetes schemas


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict(helm, scenario: str) -> None:
    result = helm.run("lint", "--strict", *values_args(scenario))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_renders_valid_kubernetes(helm, scenario: str, kube_version: str) -> None:
    docs = render(helm, *values_args(scenario), kube_version=kube_version)
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except SchemaNotFoundError:
            assert doc["kind"] in CRD_KINDS, f"no schema for {doc['kind']} {doc['apiVersion']}"
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {path}: {error.message}")


# Serving pods: probes, drain, threads


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_servers_have_grpc_probes_and_drain(helm, scenario: str) -> None:
    docs = render(helm, *values_args(scenario))
    grace = float(config_map(docs)["XLING_GRACE_PERIOD_S"])
    assert servers(docs)
    for doc in servers(docs):
        spec = pod_spec(doc)
        (container,) = spec["containers"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["grpc"] == {"port": GRPC_PORT, "service": ""}, probe
        sleep = container["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep"
        assert spec["terminationGracePeriodSeconds"] > int(sleep[1]) + grace
        assert container["args"] == ["serve"]
        assert {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"} in container["ports"]


def test_tls_mounts_the_secret_and_probes_the_port(helm) -> None:
    tls = ("--set", "tls.enabled=true", "--set", "tls.existingSecret=xling-tls",
           "--set", "tls.clientAuth=true", "--set", "tls.clientSecret=xling-client")  # fmt: skip
    docs = render(helm, *tls)
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBE_VERSIONS[-1], strict=True)
        except SchemaNotFoundError:
            assert doc["kind"] in CRD_KINDS
    spec = pod_spec(one(docs, "Deployment"))
    (container,) = spec["containers"]
    env = env_of(container)
    assert env["XLING_TLS_CERT_FILE"]["value"] == "/tls/tls.crt"
    assert env["XLING_TLS_CLIENT_CA_FILE"]["value"] == "/tls/ca.crt"
    assert {"name": "tls", "mountPath": "/tls", "readOnly": True} in container["volumeMounts"]
    assert any(v.get("secret", {}).get("secretName") == "xling-tls" for v in spec["volumes"])
    # Kubelet's gRPC probe cannot speak TLS, so the probes only check the port.
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["tcpSocket"]["port"] == GRPC_PORT, probe


@pytest.mark.parametrize(
    ("cpu_limit", "threads"), [("4", "4"), ("1500m", "1"), ("2.5", "2"), ("250m", "1")]
)
def test_threads_follow_the_cpu_limit(helm, cpu_limit: str, threads: str) -> None:
    docs = render(helm, "--set-string", f"resources.limits.cpu={cpu_limit}")
    env = env_of(pod_spec(one(docs, "Deployment"))["containers"][0])
    for name in ("XLING_WORKERS", "XLING_LOCAL_THREADS"):
        assert env[name]["value"] == threads, name
    for name in ("OMP_NUM_THREADS", "XLING_OMP_NUM_THREADS"):
        assert env[name]["value"] == "1", name


def test_cpu_threads_override_the_cpu_limit(helm) -> None:
    docs = render(helm, "--set", "cpuThreads=3")
    env = env_of(pod_spec(one(docs, "Deployment"))["containers"][0])
    assert env["XLING_WORKERS"]["value"] == env["XLING_LOCAL_THREADS"]["value"] == "3"


def test_drain_shorter_than_the_pod_grace_is_refused(helm) -> None:
    result = helm.run("template", RELEASE, "--set", "terminationGracePeriodSeconds=20")
    assert result.returncode != 0
    assert "terminationGracePeriodSeconds must exceed" in result.stderr


# Pods are locked down; keys travel by reference


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_pod_is_non_root_with_a_read_only_root(helm, scenario: str) -> None:
    docs = [d for d in render(helm, *values_args(scenario)) if d["kind"] in WORKLOADS]
    writable_paths = {"/data", "/tmp", "/snapshots", "/output"}
    for doc in docs:
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            for mount in container.get("volumeMounts", []):
                if not mount.get("readOnly"):
                    assert mount["mountPath"] in writable_paths, doc["metadata"]["name"]


def test_api_keys_are_never_inlined(helm) -> None:
    docs = render(helm, *values_args("replicated-values.yaml"))
    secret = one(docs, "Secret")
    assert base64.b64decode(secret["data"]["client-api-key"]).decode() == TEST_API_KEY
    for doc in docs:
        if doc["kind"] != "Secret":
            assert TEST_API_KEY not in json.dumps(doc), f"{doc['kind']} inlines the API key"
    for doc in [d for d in docs if d["kind"] in WORKLOADS]:
        for container in pod_spec(doc)["containers"]:
            for name in ("XLING_API_KEYS", "XLING_API_KEY", "XLING_MISTRAL_API_KEY"):
                item = env_of(container).get(name)
                if item is not None:
                    assert set(item) == {"name", "valueFrom"}
                    assert item["valueFrom"]["secretKeyRef"]["name"] == FULLNAME


def test_mistral_key_is_read_from_a_secret(helm) -> None:
    key = "mistral-test-key-5f2a"
    docs = render(helm, "--set", "mistral.enabled=true", "--set", f"mistral.apiKey={key}")
    for doc in docs:
        if doc["kind"] != "Secret":
            assert key not in json.dumps(doc)
    assert base64.b64decode(one(docs, "Secret")["data"]["mistral-api-key"]).decode() == key
    env = env_of(pod_spec(one(docs, "Deployment"))["containers"][0])
    reference = env["XLING_MISTRAL_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": FULLNAME, "key": "mistral-api-key"}


def test_existing_secrets_are_referenced_and_none_created(helm) -> None:
    docs = render(helm, *values_args("mistral-values.yaml"))
    assert not [d for d in docs if d["kind"] == "Secret"]
    env = env_of(pod_spec(one(docs, "Deployment"))["containers"][0])
    assert env["XLING_MISTRAL_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "mistral",
        "key": "api-key",
    }
    assert env["XLING_API_KEYS"]["valueFrom"]["secretKeyRef"] == {
        "name": "xling-api-keys",
        "key": "api-keys",
    }
    assert config_map(docs)["XLING_CHAT_BACKEND"] == "mistral"
    assert config_map(docs)["XLING_MISTRAL_MODEL"] == "mistral-large-2407"


def test_embedded_models_are_the_default_backend(helm) -> None:
    data = config_map(render(helm))
    assert data["XLING_CHAT_BACKEND"] == "local"
    assert not any(key.startswith("XLING_MISTRAL") for key in data)
    assert data["XLING_HOST"] == "0.0.0.0"
    assert data["XLING_DATA_DIR"] == "/data"


# Configuration rolls the pods


def checksums(docs: list[dict]) -> dict[str, str]:
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    return {key: value for key, value in annotations.items() if key.startswith("checksum/")}


def test_config_change_rolls_the_pods(helm) -> None:
    before = checksums(render(helm))
    assert checksums(render(helm, "--set", "config.log_level=DEBUG")) != before
    assert checksums(render(helm, "--set", "service.annotations.team=search")) == before


def test_secret_change_rolls_the_pods(helm) -> None:
    base = ("--set", "auth.enabled=true")
    before = checksums(render(helm, *base, "--set", "auth.apiKeys={first-key}"))
    after = checksums(render(helm, *base, "--set", "auth.apiKeys={second-key}"))
    assert before.keys() == {"checksum/config", "checksum/secret"}
    assert before["checksum/secret"] != after["checksum/secret"]


def test_config_values_become_xling_environment(helm) -> None:
    data = config_map(render(helm, *values_args("replicated-values.yaml")))
    assert data["XLING_LOG_LEVEL"] == "DEBUG"
    assert data["XLING_MAX_MESSAGE_BYTES"] == "16777216"  # not 1.6777216e+07
    assert data["XLING_TRANSLATION_TEMPERATURE"] == "0.1"
    assert data["XLING_METRICS_PORT"] == "9090"


# Traffic: Services, selectors, autoscaling


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_selectors_use_stable_labels_and_skip_job_pods(helm, scenario: str) -> None:
    docs = render(helm, *values_args(scenario))
    selectors = [d["spec"]["selector"] for d in docs if d["kind"] == "Service"]
    selectors += [d["spec"]["selector"]["matchLabels"] for d in servers(docs)]
    selectors += [
        d["spec"]["selector"]["matchLabels"] for d in docs if d["kind"] == "PodDisruptionBudget"
    ]
    for selector in selectors:
        assert set(selector) <= STABLE_SELECTOR_LABELS
        assert {"app.kubernetes.io/name", "app.kubernetes.io/instance"} <= set(selector)
    clients = [d for d in docs if d["kind"] in {"Job", "CronJob", "Pod"}]
    for service in [d for d in docs if d["kind"] == "Service"]:
        for client in clients:
            labels = pod_labels(client)
            selected = all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
            assert not selected, f"{service['metadata']['name']} selects {client['kind']} pods"


def test_headless_service_for_client_side_balancing(helm) -> None:
    docs = render(helm, *values_args("replicated-values.yaml"))
    headless = one(docs, "Service", f"{FULLNAME}-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == one(docs, "Service", FULLNAME)["spec"]["selector"]
    assert [port["name"] for port in headless["spec"]["ports"]] == ["grpc"]


def test_autoscaling_and_disruption_budget(helm) -> None:
    docs = render(helm, *values_args("replicated-values.yaml"))
    deployment = one(docs, "Deployment")
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert "replicas" not in deployment["spec"]
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert one(render(helm), "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_metrics_and_service_monitor(helm) -> None:
    docs = render(helm, *values_args("replicated-values.yaml"))
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    for name in (FULLNAME, f"{FULLNAME}-writer"):
        ports = {p["name"]: p["port"] for p in one(docs, "Service", name)["spec"]["ports"]}
        assert ports == {"grpc": GRPC_PORT, "metrics": 9090}
    for doc in servers(docs):
        ports = pod_spec(doc)["containers"][0]["ports"]
        assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in ports
    default = render(helm)
    assert not [d for d in default if d["kind"] == "ServiceMonitor"]
    assert "XLING_METRICS_PORT" not in config_map(default)


def test_network_policy_admits_clients_and_release_pods(helm) -> None:
    docs = render(helm, *values_args("replicated-values.yaml"))
    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    grpc_rule = policy["spec"]["ingress"][0]
    assert grpc_rule["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    sources = [source["podSelector"]["matchLabels"] for source in grpc_rule["from"]]
    assert {f"{FULLNAME}-client": "true"} in sources
    assert pod_labels(one(docs, "Pod"))[f"{FULLNAME}-client"] == "true"


# One index shared by the replicas


def test_replicated_mode_has_one_writer_and_read_only_replicas(helm) -> None:
    docs = render(helm, *values_args("replicated-values.yaml"))
    writer = one(docs, "StatefulSet", f"{FULLNAME}-writer")
    assert writer["spec"]["replicas"] == 1
    assert [t["metadata"]["name"] for t in writer["spec"]["volumeClaimTemplates"]] == ["data"]
    replicas = one(docs, "Deployment", FULLNAME)
    claim = one(docs, "PersistentVolumeClaim", f"{FULLNAME}-snapshots")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for doc, role, read_only in ((writer, "writer", False), (replicas, "replica", True)):
        spec = pod_spec(doc)
        env = env_of(spec["containers"][0])
        assert env["XLING_INDEX_ROLE"]["value"] == role
        assert env["XLING_SNAPSHOT_DIR"]["value"] == "/snapshots"
        (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "snapshots"]
        assert mount["mountPath"] == "/snapshots"
        assert mount.get("readOnly", False) is read_only
        (volume,) = [v for v in spec["volumes"] if v["name"] == "snapshots"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert writer["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "4"
    writer_service = one(docs, "Service", f"{FULLNAME}-writer")
    assert writer_service["spec"]["selector"]["app.kubernetes.io/component"] == "writer"


def test_single_mode_keeps_its_own_index(helm) -> None:
    docs = render(helm)
    assert not [d for d in docs if d["kind"] == "StatefulSet"]
    env = env_of(pod_spec(one(docs, "Deployment"))["containers"][0])
    assert "XLING_INDEX_ROLE" not in env and "XLING_SNAPSHOT_DIR" not in env
    persistent = render(helm, *values_args("mistral-values.yaml"))
    deployment = one(persistent, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (data,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"]["claimName"] == f"{FULLNAME}-data"


def test_single_mode_with_persistence_refuses_several_pods(helm) -> None:
    result = helm.run(
        "template", RELEASE, "--set", "persistence.enabled=true", "--set", "replicaCount=3"
    )
    assert result.returncode != 0
    assert "search.mode=replicated" in result.stderr


def test_pgvector_backend_is_one_stateless_deployment(helm) -> None:
    docs = render(helm, *values_args("pgvector-values.yaml"))
    assert not [d for d in docs if d["kind"] in {"StatefulSet", "PersistentVolumeClaim"}]
    assert not [d for d in docs if d["kind"] == "Service" and "writer" in d["metadata"]["name"]]
    deployment = one(docs, "Deployment", FULLNAME)
    assert one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == FULLNAME
    spec = pod_spec(deployment)
    env = env_of(spec["containers"][0])
    assert env["XLING_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"] == {
        "name": "xling-db-app",
        "key": "uri",
    }
    assert "XLING_INDEX_ROLE" not in env and "XLING_SNAPSHOT_DIR" not in env
    data = config_map(docs)
    assert (data["XLING_INDEX_BACKEND"], data["XLING_POSTGRES_POOL_SIZE"]) == ("pgvector", "8")
    assert not [d for d in docs if d["kind"] == "Secret"]
    egress = one(docs, "NetworkPolicy")["spec"]["egress"]
    assert {"ports": [{"port": 5432, "protocol": "TCP"}]} in egress
    assert config_map(render(helm))["XLING_INDEX_BACKEND"] == "faiss"


def test_pgvector_dsn_is_kept_in_the_charts_secret(helm) -> None:
    dsn = "postgresql://xling:pw@db:5432/xling"
    docs = render(helm, "--set", "index.backend=pgvector", "--set", f"index.postgres.dsn={dsn}")
    secret = one(docs, "Secret", FULLNAME)
    assert base64.b64decode(secret["data"]["postgres-dsn"]).decode() == dsn
    env = env_of(pod_spec(one(docs, "Deployment"))["containers"][0])
    reference = env["XLING_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": FULLNAME, "key": "postgres-dsn"}
    assert dsn not in json.dumps(one(docs, "Deployment"))


# Batch jobs


def test_translation_is_an_indexed_job_sharded_over_the_service(helm) -> None:
    docs = render(helm, *values_args("replicated-values.yaml"))
    job = one(docs, "Job")
    assert job["metadata"]["name"].startswith(f"{FULLNAME}-translate-")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == (8, 4, 3)
    (container,) = spec["template"]["spec"]["containers"]
    assert container["args"] == [
        "translate-corpus", "/input/products.jsonl", "--to", "fr", "--from", "en",
        "--output", "/output/part-$(JOB_COMPLETION_INDEX).jsonl", "--resume",
    ]  # fmt: skip
    env = env_of(container)
    assert env["XLING_SHARD_COUNT"]["value"] == "8"
    assert env["XLING_TARGET"]["value"] == f"{FULLNAME}:{GRPC_PORT}"
    assert env["XLING_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "client-api-key"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/input"]["readOnly"] is True and mounts["/input"]["subPath"] == "shop"
    assert not mounts["/output"].get("readOnly")


def test_translation_job_name_follows_its_spec(helm) -> None:
    def name(*args: str) -> str:
        docs = render(helm, *values_args("replicated-values.yaml"), *args)
        return one(docs, "Job")["metadata"]["name"]

    assert name() == name("--set", "config.log_level=INFO")
    assert name() != name("--set", "translateJob.targetLanguage=de")


def test_one_claim_for_input_and_output_is_mounted_once(helm) -> None:
    job = one(render(helm, *values_args("mistral-values.yaml")), "Job", component="translate")
    spec = job["spec"]["template"]["spec"]
    claims = [v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"][1:]]
    assert spec["volumes"][0] == {"name": "tmp", "emptyDir": {}}
    assert claims == ["corpora"]
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/output"] == {"name": "input", "mountPath": "/output", "subPath": "out"}


def test_index_build_targets_the_writer(helm) -> None:
    cron = one(render(helm, *values_args("replicated-values.yaml")), "CronJob")
    assert cron["spec"]["schedule"] == "0 3 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = pod_spec(cron)["containers"]
    assert container["args"] == ["index", "products", "/input/docs.jsonl"]
    assert env_of(container)["XLING_TARGET"]["value"] == f"{FULLNAME}-writer:{GRPC_PORT}"
    index = one(render(helm, *values_args("mistral-values.yaml")), "Job", component="index")
    assert index["metadata"]["name"].startswith(f"{FULLNAME}-index-")
    target = env_of(pod_spec(index)["containers"][0])["XLING_TARGET"]["value"]
    assert target == f"{FULLNAME}:{GRPC_PORT}"


# Values, schema, README, NOTES


def leaf_paths(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in leaf_paths(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def test_schema_describes_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in leaf_paths(values):
        node = schema
        for key in path.split("."):
            properties = resolve(schema, node).get("properties")
            assert properties and key in properties, f"values.schema.json lacks {path}"
            node = properties[key]


def test_schema_objects_forbid_unknown_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, where
            for key, child in node.items():
                walk(child, f"{where}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{where}/{index}")

    walk(schema, "#")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "replicas=2"), "Additional property replicas is not allowed"),
        (("--set", "config.log_levle=DEBUG"), "Additional property log_levle is not allowed"),
        (("--set", "search.mode=sharded"), "search.mode"),
        (("--set", "auth.enabled=true"), "auth.enabled needs"),
        (("--set", "mistral.enabled=true"), "mistral.enabled on La Plateforme needs"),
        (("--set", "translateJob.enabled=true"), "translateJob.enabled needs"),
        (("--set", "index.backend=pgvector"), "index.backend=pgvector needs"),
        (("--set", "index.backend=elastic"), "index.backend"),
        (
            (
                "--set",
                "index.backend=pgvector",
                "--set",
                "index.postgres.dsn=postgresql://d/x",
                "--set",
                "search.mode=replicated",
            ),
            "leave search.mode=single",
        ),
    ],
)
def test_bad_values_fail_at_install(helm, args: tuple[str, ...], message: str) -> None:
    result = helm.run("template", RELEASE, *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_config_keys_are_server_settings() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    keys = set(schema["properties"]["config"]["properties"])
    assert keys <= set(Settings.model_fields), keys - set(Settings.model_fields)
    assert not keys & CHART_MANAGED_SETTINGS


def test_chart_follows_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_readme_parameters_match_values(tmp_path: Path) -> None:
    for name in ("values.yaml", "README.md"):
        shutil.copy(CHART / name, tmp_path / name)
    result = subprocess.run(
        [find_tool("readme-generator"), "--values", str(tmp_path / "values.yaml"),
         "--readme", str(tmp_path / "README.md")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "README.md").read_text() == (CHART / "README.md").read_text(), (
        "helm/xling/README.md is stale: run readme-generator -v helm/xling/values.yaml "
        "-r helm/xling/README.md"
    )


def test_notes_tell_how_to_call_with_grpcurl(helm, tmp_path: Path) -> None:
    # helm template does not print NOTES.txt: render it through tpl in a copy of the chart.
    chart = tmp_path / "xling"
    shutil.copytree(CHART, chart)
    (chart / "notes.txt").write_text((CHART / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n'
    )
    for scenario, expected in (
        ("default", 'grpcurl -plaintext -d \'{"contents"'),
        ("replicated-values.yaml", f"{FULLNAME}-writer.xling.svc.cluster.local:{GRPC_PORT}"),
    ):
        result = helm.run(
            "template", RELEASE, "--namespace", "xling", "--show-only",
            "templates/notes.yaml", *values_args(scenario), chart=chart,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        notes = yaml.safe_load(result.stdout)["data"]["notes"]
        assert "port-forward svc/rel-xling 50051:50051" in notes
        assert "grpcurl -plaintext localhost:50051 list" in notes
        assert expected in notes
