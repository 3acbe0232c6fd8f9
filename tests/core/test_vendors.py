"""An accelerator vendor is one entry of meshstack/core/vendors.py: a vendor registered there, with an
override catalog naming an accelerator of it, reaches the nodes, the pods, the queues and the dashboards of
a previewed stack; an accelerator whose vendor has no entry is refused when the catalog loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshstack.cli import main
from meshstack.core.catalog import CatalogError, load_catalog
from meshstack.core.vendors import VENDORS, Chart, HealthAlert, Vendor
from tests.conftest import stack_config
from tests.support.previews import previewed
from tests.support.specs import pools

ACME = Vendor(
    resource="acme.example.com/npu",
    device_plugin=None,
    telemetry=None,
    gke_monitoring=None,
    eks_ami_type="AL2023_x86_64_STANDARD",
    utilisation=Chart("NPU utilisation", "avg by (instance) (acme_npu_busy_ratio)", "%"),
    health=Chart("NPU faults", "max by (instance) (acme_npu_faults)", "faults"),
    health_alert=HealthAlert("AcmeNpuFaulted", "max by (instance) (acme_npu_faults) > 0", "An NPU node faulted"),
    maxtext_hardware=None,
    maxtext_keys={},
    maxtext_coordinator_env=False,
    vllm_image=None,
)
OVERRIDE = {
    "accelerators": {
        "npu1": {
            "vendor": "acme",
            "memory_gib": 64,
            "memory_gbps": 2000,
            "bf16_tflops": 400,
            "fp8_tflops": 800,
            "int8_tops": 800,
            "fp32_tflops": 50,
            "board_watts": 400,
        }
    },
    "instance_types": {
        "npu1.8xlarge": {
            "accelerator": "npu1",
            "accelerators": 8,
            "vcpus": 96,
            "memory_gib": 768,
            "network_gbps": 100,
            "efa_interfaces": 0,
            "price_per_hour": 20.0,
        }
    },
}


def test_every_catalog_accelerator_names_a_registered_vendor_and_its_resource() -> None:
    for cloud in ("aws", "gcp"):
        for name, accelerator in load_catalog(cloud=cloud).accelerators.items():
            assert accelerator.resource == (VENDORS[accelerator.vendor].resource or ""), name


def test_an_accelerator_of_an_unregistered_vendor_is_refused_at_load(tmp_path: Path) -> None:
    override = tmp_path / "acme.yaml"
    override.write_text(yaml.safe_dump(OVERRIDE))
    with pytest.raises(CatalogError, match=r"accelerators.npu1: .*unknown vendor 'acme': known are nvidia"):
        load_catalog((override,))


def test_an_accelerator_cannot_claim_another_vendors_resource(tmp_path: Path) -> None:
    override = tmp_path / "claim.yaml"
    override.write_text("accelerators: {h100: {resource: aws.amazon.com/neuron}}\n")
    with pytest.raises(CatalogError, match=r"resource 'aws.amazon.com/neuron' is not nvidia's \('nvidia.com/gpu'\)"):
        load_catalog((override,))


def test_an_unregistered_vendor_is_one_line_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    override = tmp_path / "acme.yaml"
    override.write_text(yaml.safe_dump(OVERRIDE))
    monkeypatch.setenv("MESHSTACK_CATALOG", str(override))
    assert main(["validate", "--stack", "dev"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("meshstack: catalog accelerators.npu1") and "unknown vendor 'acme'" in line


def test_a_vendor_registered_in_one_entry_reaches_the_previewed_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    override = tmp_path / "acme.yaml"
    override.write_text(yaml.safe_dump(OVERRIDE))
    monkeypatch.setenv("MESHSTACK_CATALOG", str(override))
    monkeypatch.setitem(VENDORS, "acme", ACME)
    config = stack_config("prod-aws")
    pools(config)[2].update(accelerator="npu1", accelerators_per_node=8, instance_type="npu1.8xlarge")
    config["meshstack:workloads"] = [w for w in config["meshstack:workloads"] if w["kind"] == "training"]
    preview = previewed(tmp_path, "acme", config)
    [group] = [r for r in preview.resources if r.type == "aws:eks/nodeGroup:NodeGroup" and r.name.endswith("-serve")]
    assert group.inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert {"key": "acme.example.com/npu", "value": "present", "effect": "NO_SCHEDULE"} in group.inputs["taints"]
    [flavor] = [
        r for r in preview.resources if r.type.endswith("ResourceFlavor") and r.inputs["metadata"]["name"] == "serve"
    ]
    assert {"key": "acme.example.com/npu", "value": "present", "effect": "NoSchedule"} in flavor.inputs["spec"][
        "nodeTaints"
    ]
    dashboards = [r for r in preview.resources if r.type == "kubernetes:core/v1:ConfigMap" and "dashboard" in r.name]
    text = "".join(str(d.inputs) for d in dashboards)
    assert "NPU utilisation" in text and "acme_npu_faults" in text
    rules = "".join(str(r.inputs) for r in preview.resources if r.type.endswith("PrometheusRule"))
    assert "AcceleratorsIdleAcme" in rules and "acme_npu_busy_ratio" in rules
    assert "AcmeNpuFaulted" in rules and "acme_npu_faults) > 0" in rules
