"""When a cloud that upgrades clusters on its own (GKE) may do so, and when it must not."""

from __future__ import annotations

import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from meshstack.core.spec.base import (
    DNS_LABEL,
    SpecModel,
    field_error,
)
from meshstack.core.validation import check_unique

Weekday = Literal["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
WEEKDAYS: tuple[Weekday, ...] = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# GKE's rules for a recurring window (GKE "Maintenance windows and exclusions", read 2026-11-26):
# at least 48 hours of availability in any 32 days, in stretches of at least 4 hours.
MIN_WINDOW_HOURS = 4
MIN_HOURS_PER_32_DAYS = 48


class MaintenanceExclusion(SpecModel):
    """A stretch (a long training run) when GKE makes no minor or node upgrades: no slice is recreated."""

    name: str = Field(pattern=DNS_LABEL, description="A DNS label, unique among the cluster's exclusions.")
    start: str = Field(description="RFC 3339, with its offset: 2026-12-01T00:00:00Z.")
    end: str = Field(description="RFC 3339, with its offset.")

    @field_validator("start", "end")
    @classmethod
    def _instant(cls, value: str) -> str:
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise field_error("", f"'{value}' is not an RFC 3339 time such as 2026-12-01T00:00:00Z") from None
        if parsed.tzinfo is None:
            raise field_error("", "give the offset (2026-12-01T00:00:00Z): GKE reads it as UTC otherwise")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceExclusion:
        if self.end_utc <= self.start_utc:
            raise field_error("end", f"{self.end} is not after start {self.start}")
        return self

    @property
    def start_utc(self) -> datetime.datetime:
        return datetime.datetime.fromisoformat(self.start).astimezone(datetime.UTC)

    @property
    def end_utc(self) -> datetime.datetime:
        return datetime.datetime.fromisoformat(self.end).astimezone(datetime.UTC)


class MaintenanceSpec(SpecModel):
    """When GKE may upgrade the control plane and nodes (an upgrade recreates a TPU slice, killing the
    job on it). EKS has no windows: its node groups change only when the stack changes, and its control
    plane only at the end of the version's support (see ClusterSpec.support_type)."""

    days: list[Weekday] = Field(
        default_factory=lambda: list[Weekday](["SA", "SU"]),
        min_length=1,
        description="The window's weekdays (MO ... SU).",
    )
    start_utc: str = Field(default="02:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, UTC.")
    hours: int = Field(
        default=6,
        ge=MIN_WINDOW_HOURS,
        le=24,
        description=f"The window's length; with `days`, at least {MIN_HOURS_PER_32_DAYS} hours in any 32 days.",
    )
    exclusions: list[MaintenanceExclusion] = Field(
        default_factory=list, description="Stretches with no minor or node upgrade (a long training run)."
    )

    @model_validator(mode="after")
    def _enough(self) -> MaintenanceSpec:
        per_32_days = len(set(self.days)) * self.hours * 32 / 7
        if per_32_days < MIN_HOURS_PER_32_DAYS:
            raise field_error(
                "hours",
                f"{len(set(self.days))} day(s) of {self.hours} h give {per_32_days:.0f} h in 32 days; GKE needs "
                f"{MIN_HOURS_PER_32_DAYS}: add days or hours",
            )
        check_unique(((f"exclusions[{i}].name", e.name) for i, e in enumerate(self.exclusions)), "exclusion")
        return self

    def recurring_window(self) -> dict[str, str]:
        """GKE's recurring window: a first occurrence (any past date on the first listed day) and an RRULE."""
        first = datetime.date(2025, 1, 6) + datetime.timedelta(days=WEEKDAYS.index(self.days[0]))
        hour, minute = (int(x) for x in self.start_utc.split(":"))
        start = datetime.datetime(first.year, first.month, first.day, hour, minute, tzinfo=datetime.UTC)
        end = start + datetime.timedelta(hours=self.hours)
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        ordered = sorted(set(self.days), key=WEEKDAYS.index)
        return {
            "start_time": start.strftime(stamp),
            "end_time": end.strftime(stamp),
            "recurrence": f"FREQ=WEEKLY;BYDAY={','.join(ordered)}",
        }
