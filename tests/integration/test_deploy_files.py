"""The deployment files, checked as CI can without Docker or a cluster: docker-compose.yml
and the CI workflow against their vendored JSON schemas (check-jsonschema), each Kubernetes
overlay rendered by kustomize (the Makefile builds it from the Go module proxy) and
validated against the Kubernetes schemas (kubernetes-validate, strict), and the Prometheus
config, rules and rule unit tests with promtool (Debian's prometheus package). Each check
is also shown failing on a broken copy, so it cannot pass by checking nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*command: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def schema_check(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return run(BIN / "check-jsonschema", "--builtin-schema", schema, path)


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ("vendor.compose-spec", "docker-compose.yml"),
        ("vendor.github-workflows", ".github/workflows/ci.yml"),
    ],
)
def test_compose_and_workflow_follow_their_schemas(schema: str, path: str, tmp_path: Path) -> None:
    done = schema_check(schema, ROOT / path)
    assert (done.returncode, done.stdout.strip()) == (0, "ok -- validation done"), done.stderr
    broken = yaml.safe_load((ROOT / path).read_text())
    if schema == "vendor.compose-spec":
        broken["services"]["api"]["depends_on"]["kafka"]["condition"] = "service_ready"
    else:
        broken["jobs"]["test"]["runs-on"] = {"os": "linux"}
    bad = tmp_path / Path(path).name
    bad.write_text(yaml.safe_dump(broken))
    assert schema_check(schema, bad).returncode == 1


def test_compose_services_wait_for_healthy_dependencies() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {
        "kafka",
        "schema-registry",
        "clickhouse",
        "redis",
        "worker",
        "api",
        "control",
        "simulate",
        "worker-gpu",
        "prometheus",
        "grafana",
    }
    for name in ("worker", "api", "control", "simulate", "worker-gpu"):
        needs = services[name]["depends_on"]
        assert {d: needs[d]["condition"] for d in needs} == {
            "kafka": "service_healthy",
            "clickhouse": "service_healthy",
            "schema-registry": "service_healthy",
            **({"redis": "service_healthy"} if name == "api" else {}),
        }
    assert all("healthcheck" in services[s] for s in ("kafka", "clickhouse", "redis", "grafana"))
    assert services["simulate"]["profiles"] == ["demo"]
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "DELTAOMEGA_AUTH_SECRET=" in (ROOT / ".env.example").read_text()


@pytest.mark.parametrize("overlay", ["small", "large"])
def test_kubernetes_overlays_render_and_validate(overlay: str, tmp_path: Path) -> None:
    kustomize = os.environ.get("DELTAOMEGA_KUSTOMIZE") or shutil.which("kustomize")
    assert kustomize and Path(kustomize).exists(), "`make test` builds kustomize"
    rendered = run(kustomize, "build", ROOT / "infra/k8s/overlays" / overlay)
    assert rendered.returncode == 0, rendered.stderr
    documents = list(yaml.safe_load_all(rendered.stdout))
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in documents)
    assert [k for k in kinds if not k.startswith("ConfigMap/")] == [
        "Deployment/deltaomega-api",
        "Deployment/deltaomega-control",
        "HorizontalPodAutoscaler/deltaomega-api",
        "NetworkPolicy/deltaomega-api",
        "NetworkPolicy/deltaomega-internal",
        "PodDisruptionBudget/deltaomega-api",
        "PodDisruptionBudget/deltaomega-worker",
        "Service/deltaomega-api",
        "Service/deltaomega-worker",
        "StatefulSet/deltaomega-worker",
    ]
    workers = next(d for d in documents if d["kind"] == "StatefulSet")
    assert workers["spec"]["replicas"] == {"small": 1, "large": 6}[overlay]
    probe = workers["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"]["path"] == "/readyz"
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered.stdout)
    validator = BIN / "kubernetes-validate"
    done = run(validator, "--strict", "--quiet", path)
    assert done.returncode == 0, done.stdout + done.stderr
    path.write_text(rendered.stdout.replace("containerPort: 8000", "containerPorts: 8000"))
    assert run(validator, "--strict", "--quiet", path).returncode == 1


def test_prometheus_config_rules_and_their_unit_tests(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus) is installed by `make test`"
    source = ROOT / "infra/prometheus"
    for name in ("rules.yml", "rules_test.yml"):
        shutil.copy(source / name, tmp_path / name)
    config = (source / "prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/rules.yml", str(tmp_path / "rules.yml"))
    )
    checked = run(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    tested = run(promtool, "test", "rules", "rules_test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # a rule whose threshold drifted fails its unit test
    rules = (tmp_path / "rules.yml").read_text()
    (tmp_path / "rules.yml").write_text(rules.replace("> 0.05", "> 0.5"))
    assert run(promtool, "test", "rules", "rules_test.yml", cwd=tmp_path).returncode == 1
