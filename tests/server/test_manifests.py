"""The Kubernetes manifests under examples/ validate against the Kubernetes OpenAPI schemas
(kubernetes-validate, offline) and hang together (references, selectors, the logger URL)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.30.0"
MANIFESTS = [ROOT / "examples" / "k8s" / "pod.yaml", ROOT / "examples" / "kserve" / "sidecar.yaml",
             ROOT / "examples" / "kserve" / "inferenceservice.yaml"]
CUSTOM_KINDS = {("serving.kserve.io/v1beta1", "InferenceService")}  # no schema ships for CRDs


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_objects_validate_strictly(path: Path) -> None:
    docs = _docs(path)
    assert docs
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_catches_a_broken_manifest() -> None:
    deployment = next(d for d in _docs(MANIFESTS[1]) if d["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []  # strict: unknown field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in docs}


def test_kserve_sidecar_references_resolve() -> None:
    objs = _by_kind(_docs(MANIFESTS[1]))
    dep, svc = objs["Deployment"], objs["Service"]
    pod = dep["spec"]["template"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"  # one writer
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    container = pod["spec"]["containers"][0]
    port_names = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= port_names
    token = next(e for e in container["env"] if e["name"] == "SHIFTWATCH_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["name"] == objs["Secret"]["metadata"]["name"]
    assert token["valueFrom"]["secretKeyRef"]["key"] in objs["Secret"]["stringData"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
    assert claim == objs["PersistentVolumeClaim"]["metadata"]["name"]
    assert volumes["config"]["configMap"]["name"] == objs["ConfigMap"]["metadata"]["name"]
    config = yaml.safe_load(objs["ConfigMap"]["data"]["sidecar.yaml"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert config["db_path"].startswith(mounts["data"] + "/")
    assert config["host"] == "0.0.0.0"
    assert config["port"] == container["ports"][0]["containerPort"] == svc["spec"]["ports"][0]["port"]
    from monitor.settings import Settings

    Settings(**config)  # every key is a real setting


def test_inference_service_logger_points_at_the_sidecar_route() -> None:
    (isvc,) = _docs(MANIFESTS[2])
    objs = _by_kind(_docs(MANIFESTS[1]))
    assert (isvc["apiVersion"], isvc["kind"]) in CUSTOM_KINDS
    logger = isvc["spec"]["predictor"]["logger"]
    assert logger["mode"] == "all"  # both halves, or nothing can be joined
    url = urlsplit(logger["url"])
    svc = objs["Service"]
    assert url.hostname is not None and url.hostname.split(".")[0] == svc["metadata"]["name"]
    assert url.port == svc["spec"]["ports"][0]["port"] and url.path == "/v1/cloudevents"
    assert parse_qs(url.query)["token"] == [objs["Secret"]["stringData"]["token"]]
    from monitor.api.cloudevents import router

    assert url.path in {getattr(r, "path", None) for r in router.routes}
    args = isvc["spec"]["predictor"]["model"]["args"]
    assert f"--model_name={isvc['metadata']['name']}" in args  # the record's model_name


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    if doc["kind"] == "Pod":
        return list(spec.get("containers", []))
    if "template" in spec:
        return list(spec["template"]["spec"].get("containers", []))
    return []


@pytest.mark.parametrize("path", MANIFESTS[:2], ids=lambda p: str(p.relative_to(ROOT)))
def test_probes_target_the_pod_ip_the_sidecar_listens_on(path: Path) -> None:
    """The kubelet sends httpGet probes to ``host`` (default: the Pod IP) from its node, so a
    ``host: 127.0.0.1`` probes the node, never the Pod; a server bound to loopback only would
    fail every probe."""
    docs = _docs(path)
    probes = [(c, c[kind]) for d in docs for c in _containers(d)
              for kind in ("startupProbe", "livenessProbe", "readinessProbe") if kind in c]
    assert probes
    for container, probe in probes:
        assert "host" not in probe["httpGet"], container["name"]
        port = probe["httpGet"]["port"]
        declared = {p["name"] for p in container.get("ports", [])} | {
            p["containerPort"] for p in container.get("ports", [])}
        assert port in declared, (container["name"], port)
    for cm in (d for d in docs if d["kind"] == "ConfigMap" and "sidecar.yaml" in d["data"]):
        assert yaml.safe_load(cm["data"]["sidecar.yaml"])["host"] == "0.0.0.0"
