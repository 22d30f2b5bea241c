"""The files in cluster/ parse, say their exact command in a header comment, pin the Ray version
of pyproject.toml, and hold what their tools require: `ray up` configs against Ray's own schema,
pod templates against Kubernetes' schemas (kubernetes-validate), the RayCluster/RayJob fields
KubeRay's CRDs require, and the compose file against the compose-spec schema."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).parents[2]
CLUSTER = ROOT / "cluster"
FILES = sorted(p for p in CLUSTER.iterdir() if p.name != "README.md")
# Ray pins as they appear in the files: pip requirements, KubeRay's rayVersion, image tags.
RAY_PINS = [r"ray\[[a-z,]+\]==([0-9.]+)", r"rayVersion: \"([0-9.]+)\"",
            r"rayproject/ray:([0-9.]+)"]


def ray_version() -> str:
    # A regex, not tomllib: Python 3.10 (supported) has no tomllib.
    (pin,) = re.findall(r'"ray\[[a-z,]+\]==([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    return pin


def load(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((CLUSTER / name).read_text()) if doc]


def test_the_cluster_files_ship():
    assert {p.name for p in FILES} == {
        "ray-up.yaml", "kuberay-raycluster.yaml", "kuberay-rayjob.yaml", "kuberay-config.yaml",
        "slurm-search.sbatch", "mlflow-stack.compose.yaml", "Dockerfile"}


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_header_comment_holds_the_exact_command(path):
    lines = path.read_text().splitlines()
    header = []
    for line in lines[1:] if lines[0].startswith("#!") else lines:
        if not line.startswith("#") or line.startswith("#SBATCH"):
            break
        header.append(line)
    assert header, f"{path.name}: no header comment"
    assert f"cluster/{path.name}" in "\n".join(header), f"{path.name}: header lacks its command"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_ray_pin_matches_pyproject(path):
    text = path.read_text()
    found = [v for pattern in RAY_PINS for v in re.findall(pattern, text)]
    if path.name not in ("mlflow-stack.compose.yaml", "kuberay-config.yaml"):
        assert found, f"{path.name}: no Ray version pinned"
    assert set(found) <= {ray_version()}, f"{path.name}: {found} vs pyproject {ray_version()}"


def test_ray_up_config_matches_rays_schema():
    import ray

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json")
                        .read_text())
    (config,) = load("ray-up.yaml")
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpu = types["gpu_worker"]
    assert gpu["resources"]["GPU"] >= 1 and 0 <= gpu["min_workers"] <= gpu["max_workers"]
    setup = "\n".join(config["setup_commands"])
    assert f"ray[default,tune,train]=={ray_version()}" in setup and "hk_tune" in setup


def pod_templates(spec: dict) -> list[dict]:
    return [spec["headGroupSpec"]["template"],
            *(group["template"] for group in spec["workerGroupSpecs"])]


def check_ray_cluster_spec(spec: dict) -> None:
    """The fields KubeRay's RayCluster CRD (ray.io/v1) requires, and pod templates that
    Kubernetes' own PodTemplate schema accepts."""
    import kubernetes_validate

    assert spec["rayVersion"] == ray_version()
    assert isinstance(spec["headGroupSpec"]["rayStartParams"], dict)
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"] and isinstance(group["rayStartParams"], dict)
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1
    for template in pod_templates(spec):
        assert template["spec"]["containers"], "a pod template needs containers"
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"},
             "template": template}, "1.32.0", strict=True)


def test_kuberay_raycluster():
    (cluster,) = load("kuberay-raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert cluster["metadata"]["name"]
    check_ray_cluster_spec(cluster["spec"])


def test_kuberay_rayjob_runs_a_search_and_shuts_down():
    (job,) = load("kuberay-rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["entrypoint"].startswith("hk-tune search ")
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    check_ray_cluster_spec(job["spec"]["rayClusterSpec"])


def test_kuberay_config_is_valid_kubernetes():
    import kubernetes_validate

    docs = load("kuberay-config.yaml")
    for doc in docs:
        kubernetes_validate.validate(doc, "1.32.0", strict=True)
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert {"HK_TUNE_STORAGE_PATH", "MLFLOW_TRACKING_URI"} <= set(config["data"])


def test_compose_file_matches_the_compose_spec():
    from check_jsonschema.builtin_schemas import get_builtin_schema

    (stack,) = load("mlflow-stack.compose.yaml")
    jsonschema.validate(stack, get_builtin_schema("vendor.compose-spec"))
    command = stack["services"]["mlflow"]["command"]
    assert "mlflow server" in command and "--backend-store-uri postgresql" in command
    assert "--artifacts-destination s3://" in command
    assert {"postgres", "minio", "mlflow"} <= set(stack["services"])


def test_slurm_script_parses_and_runs_the_search():
    script = (CLUSTER / "slurm-search.sbatch").read_text()
    subprocess.run(["bash", "-n", str(CLUSTER / "slurm-search.sbatch")], check=True)
    directives = dict(re.findall(r"^#SBATCH --([a-z-]+)=?(\S*)", script, re.M))
    assert {"nodes", "ntasks-per-node", "gpus-per-node"} <= set(directives)
    assert "ray start --head" in script and "ray start --address" in script
    assert re.search(r"^hk-tune search .*--address", script, re.M)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(CLUSTER / "slurm-search.sbatch")], check=True)
