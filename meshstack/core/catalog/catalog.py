"""Loads the catalog: the shipped YAML, then each override file merged over it.

The catalog is data rather than code so that a platform team can add an instance
type, correct a price or apply its negotiated discount without a release.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from meshstack.core import clouds
from meshstack.core.clouds import known_clouds
from meshstack.core.errors import EXIT_INVALID, MeshstackError
from meshstack.core.input_files import load_yaml_file
from meshstack.core.vendors import VENDORS
from meshstack.core.yaml_text import load_yaml

OVERRIDE_ENV = "MESHSTACK_CATALOG"


class CatalogError(MeshstackError, ValueError):
    """A catalog file that cannot be read or does not describe a valid catalog."""

    exit_code = EXIT_INVALID


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceSource(_Model):
    region: str
    currency: Literal["USD"]
    date: str
    source: str


class CloudFacts(_Model):
    """What the spec checks about a cloud that is not a price: where things can be, what it offers.

    Kept as data beside the prices, so that the spec validates any cloud the same way and a
    new cloud brings its rules in its own catalog file.
    """

    config_keys: dict[str, str] = Field(description="spec field -> the provider config key it comes from")
    regions: list[str] = Field(
        min_length=1,
        description="The cloud's regions a stack may name; an override file adds one the list lacks (a list "
        "replaces the shipped one whole, so repeat it with the new region).",
    )
    region_example: str
    project_pattern: str | None = Field(default=None, description="Set where the cloud needs a project id.")
    zone_required: bool = False
    reservation_id_pattern: str
    reservation_id_example: str
    markets: list[str]
    storage: list[str] = Field(description="The StorageSpec kinds this cloud offers (buckets, lustre, ...).")
    tag_style: Literal["tags", "labels"] = Field(description="labels: lowercase keys and values, no ':'.")
    maintenance_windows: bool = Field(
        default=False, description="Whether the cloud upgrades clusters on its own, within windows the spec sets."
    )


class TpuTopology(_Model):
    chips: int = Field(gt=0)
    hosts: int = Field(gt=0)
    machine_type: str


SPOT_HELP = "Off on-demand on the spot market; the catalog's markets.spot_discount when unset."
Zones = dict[str, list[str]]
ZONES_HELP = (
    "Where it is offered, by region: AWS zone ids (use1-az4), Google Cloud zones (us-east5-a). "
    "None: the catalog does not restrict it."
)


class TpuGeneration(_Model):
    gke_accelerator: str = Field(description="The value GKE puts in cloud.google.com/gke-tpu-accelerator.")
    price_per_chip_hour: float = Field(ge=0)
    spot: bool = True
    spot_discount: float | None = Field(default=None, ge=0, lt=1, description=SPOT_HELP)
    zones: Zones | None = Field(default=None, description=ZONES_HELP)
    topologies: dict[str, TpuTopology]

    @property
    def chips_per_host(self) -> int:
        return max(t.chips // t.hosts for t in self.topologies.values())


class Markets(_Model):
    spot_discount: float = Field(ge=0, lt=1)


class Discounts(_Model):
    """Percent off list price, per kind of spend."""

    instances: float = Field(default=0, ge=0, le=100)
    storage: float = Field(default=0, ge=0, le=100)
    services: float = Field(default=0, ge=0, le=100)


class Accelerator(_Model):
    """Peak dense (no sparsity) rates per accelerator; 0 where it has no such path (fp8 on an A100)."""

    vendor: str = Field(description="A vendor of meshstack/core/vendors.py: what its nodes, add-ons and telemetry are.")
    memory_gib: float = Field(ge=0)
    memory_gbps: float = Field(ge=0, description="Memory bandwidth, GB/s: what bounds decoding.")
    bf16_tflops: float = Field(ge=0)
    fp8_tflops: float = Field(ge=0)
    int8_tops: float = Field(ge=0)
    fp32_tflops: float = Field(ge=0)
    board_watts: float = Field(ge=0, description="Board power (TDP).")
    board_watts_estimated: bool = Field(default=False, description="True where the vendor publishes no figure.")
    resource: str = Field(
        description="The extended resource pods request: the vendor's own (empty for none), taken from it when "
        "left out."
    )

    @model_validator(mode="before")
    @classmethod
    def _vendor_known(cls, data: Any) -> Any:
        """The vendor has an entry, and the resource is its own: an accelerator cannot claim another's."""
        if not isinstance(data, dict) or not isinstance(data.get("vendor"), str):
            return data
        vendor = VENDORS.get(data["vendor"])
        if vendor is None:
            raise ValueError(f"unknown vendor '{data['vendor']}': known are {', '.join(VENDORS)}")
        own = vendor.resource or ""
        if data.setdefault("resource", own) != own:
            raise ValueError(f"resource '{data['resource']}' is not {data['vendor']}'s ('{own}')")
        return data

    def peak_tflops(self, precision: str) -> float:
        """The dense peak for a precision: bf16, fp8, int8 or fp32."""
        return {"bf16": self.bf16_tflops, "fp8": self.fp8_tflops, "int8": self.int8_tops, "fp32": self.fp32_tflops}[
            precision
        ]


class Energy(_Model):
    """How the estimate turns nodes into kWh and kgCO2e, with where each figure comes from."""

    watts_per_vcpu: float = Field(ge=0, description="Host CPU power per vCPU at average load.")
    watts_per_gib: float = Field(ge=0, description="Host memory power per GiB.")
    accelerator_load: float = Field(gt=0, le=1, description="Share of board power a busy accelerator draws.")
    pue: float = Field(ge=1, description="Data-centre power usage effectiveness.")
    grid_gco2e_per_kwh: dict[str, float] = Field(description="Grid carbon intensity by region.")
    source: str


class InstanceType(_Model):
    """One machine type; `host_watts` (CPUs and memory) comes from the catalog's energy coefficients."""

    accelerator: str
    accelerators: int = Field(ge=0)
    vcpus: int = Field(gt=0)
    memory_gib: float = Field(gt=0)
    network_gbps: float = Field(gt=0)
    efa_interfaces: int = Field(ge=0)
    price_per_hour: float | None = Field(
        ge=0, description="On-demand, in the catalog's base region; null where no published price is recorded."
    )
    capacity_block_price_per_hour: float | None = Field(default=None, ge=0)
    spot: bool = Field(default=True, description="Whether the type can be had as spot capacity.")
    spot_discount: float | None = Field(default=None, ge=0, lt=1, description=SPOT_HELP)
    gpu_type: str | None = Field(default=None, description="GCP: the GKE GPU type where it differs from gpu_types.")
    efa_only_secondary: bool = Field(
        default=False,
        description="AWS: the network cards after the first take EFA-only interfaces (RDMA without an IP address).",
    )
    zones: Zones | None = Field(default=None, description=ZONES_HELP)
    price_source: str | None = Field(
        default=None, description="Where this price comes from, where not the catalog's source."
    )

    @property
    def supports_efa(self) -> bool:
        return self.efa_interfaces > 0


class RegionalPrices(_Model):
    """One region's prices: on-demand where they differ from the base region's list prices (the base region
    itself records none), and spot as the snapshot recorded them (per hour, the median over the region's
    zones). A type missing here is priced from the base region, and the estimate says so."""

    source: str
    instance_types: dict[str, float] = Field(default_factory=dict, description="On-demand, per hour.")
    spot: dict[str, float] = Field(default_factory=dict, description="Spot, per hour (it moves hourly).")
    tpu_chip_hour: dict[str, float] = Field(default_factory=dict)
    tpu_spot_chip_hour: dict[str, float] = Field(default_factory=dict)
    notes: dict[str, str] = Field(
        default_factory=dict, description="Per type, how its figure here was derived, where not read as is."
    )


class Catalog(_Model):
    cloud: str = "aws"
    facts: CloudFacts
    prices: PriceSource
    regional_prices: dict[str, RegionalPrices] = Field(
        default_factory=dict,
        description="Prices in other regions than prices.region; a region missing here is "
        "priced at the base region's rates, and the estimate says so.",
    )
    services: dict[str, Any] = Field(description="Service prices, read and checked by the cloud's pricing module.")
    markets: Markets
    discounts: Discounts = Discounts()
    accelerators: dict[str, Accelerator]
    instance_types: dict[str, InstanceType]
    gpu_types: dict[str, str] = Field(default_factory=dict, description="GCP: accelerator -> GKE GPU type.")
    tpus: dict[str, TpuGeneration] = Field(default_factory=dict)
    energy: Energy

    def node_watts(self, instance_type: str) -> float:
        """What one node draws at the wall while it works: its accelerators at the catalog's load, its
        CPUs and memory from the energy coefficients, times the data centre's PUE."""
        itype = self.instance_types[instance_type]
        accelerator = self.accelerators[itype.accelerator]
        energy = self.energy
        board = itype.accelerators * accelerator.board_watts * energy.accelerator_load
        host = itype.vcpus * energy.watts_per_vcpu + itype.memory_gib * energy.watts_per_gib
        return (board + host) * energy.pue

    def run_kwh(self, instance_type: str, nodes: int, hours: float) -> float:
        """Energy at the wall of `nodes` such nodes working for `hours`."""
        return self.node_watts(instance_type) * nodes * hours / 1000

    def kg_co2e(self, kwh: float, region: str) -> float | None:
        """The emissions of `kwh` drawn from the region's grid; None where the catalog has no figure."""
        intensity = self.grid_intensity(region)
        return None if intensity is None else kwh * intensity / 1000

    def grid_intensity(self, region: str) -> float | None:
        """gCO2e per kWh of the region's grid; None where the catalog has no figure."""
        return self.energy.grid_gco2e_per_kwh.get(region)

    def model_post_init(self, _context: Any) -> None:
        self._check_regions()
        for name, itype in self.instance_types.items():
            if itype.accelerator not in self.accelerators:
                raise CatalogError(
                    f"catalog instance_types.{name}.accelerator: '{itype.accelerator}' is not one of "
                    f"the catalog's accelerators ({', '.join(sorted(self.accelerators))})"
                )
        for name, generation in self.tpus.items():
            for topology, shape in generation.topologies.items():
                if shape.machine_type not in self.instance_types:
                    raise CatalogError(
                        f"catalog tpus.{name}.topologies.{topology}.machine_type: '{shape.machine_type}' "
                        "is not one of the catalog's instance types"
                    )

    def _check_regions(self) -> None:
        """Every region the catalog prices, places or gives a grid figure for is one of its regions."""
        known = set(self.facts.regions)
        named: dict[str, set[str]] = {
            "regional_prices": set(self.regional_prices),
            "energy.grid_gco2e_per_kwh": set(self.energy.grid_gco2e_per_kwh),
        }
        for name, itype in self.instance_types.items():
            named[f"instance_types.{name}.zones"] = set(itype.zones or {})
        for name, generation in self.tpus.items():
            named[f"tpus.{name}.zones"] = set(generation.zones or {})
        for where, regions in named.items():
            unknown = sorted(regions - known)
            if unknown:
                raise CatalogError(f"catalog {where}: {', '.join(unknown)} not in facts.regions")

    def offering(self, instance_type: str) -> InstanceType | TpuGeneration:
        """Where the type's zones and spot discount are kept: a TPU host's are its generation's."""
        itype = self.instance_types[instance_type]
        return self.tpus.get(itype.accelerator, itype)

    def zones(self, instance_type: str, region: str) -> list[str] | None:
        """The zones of `region` offering the type (for a TPU host, its generation); None where the
        catalog does not restrict it, [] where the catalog lists the type in other regions only."""
        offered = self.offering(instance_type).zones
        return None if offered is None else offered.get(region, [])

    def spot_discount(self, instance_type: str) -> float:
        own = self.offering(instance_type).spot_discount
        return self.markets.spot_discount if own is None else own

    def is_tpu(self, accelerator: str) -> bool:
        return accelerator in self.tpus

    def instance_types_for(self, accelerator: str, per_node: int | None = None) -> list[str]:
        """Instance types carrying that accelerator (and that many per node), cheapest first."""
        matches = [
            (math.inf if itype.price_per_hour is None else itype.price_per_hour, name)
            for name, itype in self.instance_types.items()
            if itype.accelerator == accelerator and (per_node is None or itype.accelerators == per_node)
        ]
        return [name for _, name in sorted(matches)]

    def per_node_counts(self, accelerator: str) -> list[int]:
        """How many of that accelerator a node can carry, over every instance type that has it."""
        return sorted({self.instance_types[t].accelerators for t in self.instance_types_for(accelerator)})


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read(path: Path, shipped: bool = False) -> dict[str, Any]:
    """A cloud's own catalog through libyaml's C loader; a user's override through the input boundary."""
    data = load_yaml(path.read_text()) if shipped else load_yaml_file(path)
    if not isinstance(data, dict):
        raise CatalogError(f"catalog file {path} must hold a mapping at the top level")
    return data


def _override_paths() -> tuple[Path, ...]:
    raw = os.environ.get(OVERRIDE_ENV, "")
    return tuple(Path(p) for p in raw.split(os.pathsep) if p)


def load_catalog(overrides: tuple[Path, ...] | None = None, cloud: str = "aws") -> Catalog:
    """A cloud's shipped catalog with override files merged over it (MESHSTACK_CATALOG by default).

    An override file applies to the cloud its `cloud:` key names, AWS when it names none.
    """
    return _load(overrides if overrides is not None else _override_paths(), cloud)


@functools.lru_cache(maxsize=8)
def _load(overrides: tuple[Path, ...], cloud: str) -> Catalog:
    if cloud not in known_clouds():
        raise CatalogError(f"no catalog for cloud '{cloud}' (known: {', '.join(known_clouds())})")
    data = _read(clouds.get(cloud).catalog, shipped=True)
    for path in overrides:
        override = _read(path)
        if override.get("cloud", "aws") == cloud:
            data = _merge(data, override)
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CatalogError(f"catalog {where}: {first['msg']}") from exc
