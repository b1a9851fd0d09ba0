"""deploy/: Prometheus config and rule tests (promtool), the dashboard, Kubernetes and compose files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, require_component, require_executable
from tests.deploy.conftest import DEPLOY

K8S = DEPLOY / "kubernetes"
NODE_DIR = REPO / "tests" / "node"


def test_prometheus_config_is_valid():
    promtool = require_executable("promtool", "apt-get install prometheus")
    result = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_prometheus_config_is_valid(tmp_path: Path):
    promtool = require_executable("promtool", "apt-get install prometheus")
    # laid out as the compose file mounts it: config beside rules/
    shutil.copy(DEPLOY / "compose" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copytree(DEPLOY / "prometheus" / "rules", tmp_path / "rules")
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_their_unit_tests():
    promtool = require_executable("promtool", "apt-get install prometheus")
    for rules in (DEPLOY / "prometheus" / "rules").glob("*.yml"):
        check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    result = subprocess.run(
        [promtool, "test", "rules", str(DEPLOY / "prometheus" / "tests" / "meter-rules-test.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_dashboard_json_is_the_builders_output():
    sys.path.insert(0, str(DEPLOY / "grafana"))
    try:
        import build_dashboard
    finally:
        sys.path.pop(0)
    committed = (DEPLOY / "grafana" / "dashboards" / "gpu-cost-meter.json").read_text()
    assert committed == build_dashboard.render(), "run python deploy/grafana/build_dashboard.py and commit the JSON"


def test_dashboard_follows_the_linter_rules():
    """The rules of grafana/dashboard-linter that apply: templated datasource, variables, rate intervals."""
    d = json.loads((DEPLOY / "grafana" / "dashboards" / "gpu-cost-meter.json").read_text())
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("hostname", "gpu"):
        assert variables[name]["datasource"]["uid"] == "${datasource}" and variables[name]["includeAll"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}" and p["title"] and p["fieldConfig"]["defaults"]["unit"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
            for window in re.findall(r"\[([^\]]+)\]", t["expr"]):
                assert window in ("$__rate_interval", "$__range"), f"{p['title']}: use $__rate_interval, not [{window}]"
            if "[$__range]" in t["expr"]:
                assert "increase(" in t["expr"], f"{p['title']}: a total over the range is an increase()"
            if "meter_gpu_" in t["expr"] and not t.get("instant") and "sum" not in t["expr"]:
                assert "$hostname" in t["expr"] and "$gpu" in t["expr"], f"{p['title']} ignores the GPU filters"
            if "meter" in t["expr"] and p["type"] in ("stat", "timeseries"):  # fleet stats too
                assert "$hostname" in t["expr"], f"{p['title']} ignores the host filter"
    titles = {p["title"] for p in d["panels"]}
    assert {"Idle dollars by namespace", "Tensor-core and SM activity (GPM)", "GPU health"} <= titles
    rental = next(p for p in d["panels"] if p["title"] == "Rental $ so far")["targets"][0]["expr"]
    assert rental.startswith("sum(increase(meter_gpu_rental_usd_total{"), rental  # not a raw counter that resets


def test_grafana_provisioning_points_at_the_dashboards():
    ds = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    boards = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "gpu-cost-meter.yml").read_text())
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    path = boards["providers"][0]["options"]["path"]
    assert any(m.endswith(f":{path}:ro") for m in mounts)


def _manifests() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_manifests_validate_against_the_schemas():
    import kubernetes_validate

    core = [(p, d) for p, d in _manifests() if not d["apiVersion"].startswith("monitoring.coreos.com")]
    assert {d["kind"] for _, d in core} >= {"DaemonSet", "Service", "Job", "Namespace"}
    for _path, doc in core:
        for version in ("1.28.0", "1.37.0"):
            kubernetes_validate.validate(doc, version, strict=True)  # raises on any schema error


def test_daemonset_follows_gpu_node_conventions():
    ds = next(d for _, d in _manifests() if d["kind"] == "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"} and spec["runtimeClassName"] == "nvidia"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    container = spec["containers"][0]
    assert container["ports"][0]["name"] == "metrics" and "limits" in container["resources"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]  # the exporter watches GPUs, it does not claim one
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    service = next(d for _, d in _manifests() if d["kind"] == "Service" and d["metadata"]["name"] == "gpu-cost-meter")
    assert service["spec"]["selector"] == ds["spec"]["selector"]["matchLabels"]


def test_servicemonitor_validates_against_the_prometheus_operator_crd():
    node = shutil.which("node")
    modules = NODE_DIR / "node_modules" / "@kubernetes-models" / "prometheus-operator"
    require_component(
        "node and @kubernetes-models/prometheus-operator",
        bool(node) and modules.is_dir(),
        "install Node.js, then: npm ci --prefix tests/node",
    )
    result = subprocess.run(
        [node, str(NODE_DIR / "validate-crds.mjs"), *map(str, sorted(K8S.glob("*.yaml")))],
        capture_output=True,
        text=True,
        cwd=NODE_DIR,
    )
    assert result.returncode == 0 and "OK" in result.stdout and "INVALID" not in result.stdout, result.stdout
    sm = next(d for _, d in _manifests() if d["kind"] == "ServiceMonitor")
    service = next(d for _, d in _manifests() if d["kind"] == "Service" and d["metadata"]["name"] == "gpu-cost-meter")
    assert sm["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_kustomization_lists_existing_files_and_renders():
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kust["resources"]:
        assert (K8S / resource).is_file(), resource
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (the render is an extra check; the schemas are checked above)")
    rendered = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d}
    assert kinds == {"Namespace", "DaemonSet", "Service", "ServiceMonitor"}


def test_compose_and_dockerfile_refer_to_files_that_exist():
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    assert set(compose["services"]) == {"exporter", "prometheus", "grafana"}
    for service in compose["services"].values():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / "compose" / source).resolve().exists(), mount
    assert compose["services"]["exporter"]["build"]["target"] == "exporter"
    assert (DEPLOY / "compose" / compose["services"]["exporter"]["build"]["context"] / "Dockerfile").is_file()
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM \S+ AS exporter$", dockerfile, re.M) and re.search(
        r"^FROM \S+ AS bench$", dockerfile, re.M
    )
    for source in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert (REPO / source).exists(), source


def test_distributed_benchmark_forms_one_torchrun_job_across_nodes():
    docs = [d for p, d in _manifests() if p.name == "distributed-bench.yaml"]
    job = next(d for d in docs if d["kind"] == "Job")
    service = next(d for d in docs if d["kind"] == "Service")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]

    def flag(name: str) -> str:
        return args[args.index(name) + 1]

    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == int(flag("--nnodes"))
    # pod 0 hosts the rendezvous, found by its hostname under the headless Service
    assert service["spec"]["clusterIP"] == "None" and pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    host, port = flag("--rdzv-endpoint").split(":")
    assert host == f"{job['metadata']['name']}-0.{service['metadata']['name']}"
    assert int(port) == service["spec"]["ports"][0]["port"] and flag("--rdzv-backend") == "c10d"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert flag("--node-rank") == "$(NODE_RANK)"
    assert (
        env["NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"]
        == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    # every GPU of a node is one rank, one pod per node
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == int(flag("--nproc-per-node"))
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    # meter runs distributed and hands its run file to the exporter Service of the same deployment
    assert args[args.index("-m") + 1 : args.index("-m") + 4] == ["meter", "bench", "--distributed"]
    exporter = next(d for _, d in _manifests() if d["kind"] == "Service" and d["metadata"]["name"] == "gpu-cost-meter")
    assert flag("--push") == (
        f"http://{exporter['metadata']['name']}.{exporter['metadata']['namespace']}.svc:"
        f"{exporter['spec']['ports'][0]['port']}"
    )
