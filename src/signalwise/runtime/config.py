"""The configuration of one run: validated once, written into the run directory."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TimingConfig(BaseModel):
    """Safety timing defaults; `None` = derive from geometry (ITE yellow, all-red, crossing length)."""

    model_config = ConfigDict(extra="forbid")
    yellow_s: float | None = Field(None, ge=3.0, le=6.0)
    all_red_s: float | None = Field(None, ge=0.0, le=6.0)
    min_green_s: float = Field(5.0, ge=2.0, le=60.0)
    max_green_s: float = Field(60.0, ge=5.0, le=300.0)
    ped_walk_s: float = Field(7.0, ge=4.0, le=30.0)
    ped_clearance_s: float | None = Field(None, ge=0.0, le=60.0)
    cycle_min_s: float = Field(40.0, ge=10.0, le=300.0)
    cycle_max_s: float = Field(150.0, ge=20.0, le=600.0)
    #: per traffic-light overrides of the fields above
    per_intersection: dict[str, dict[str, float]] = Field(default_factory=dict)


class ShieldSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confidence_threshold: float = Field(0.5, ge=0.0, le=1.0)
    max_observation_age_s: float = Field(10.0, gt=0)
    preempt_distance_m: float = Field(150.0, gt=0)
    preempt_max_dwell_s: float = Field(60.0, gt=0)


class RunConfig(BaseModel):
    """Everything that determines a run; a seed reproduces it exactly."""

    model_config = ConfigDict(extra="forbid")
    scenario: str = "single"
    controller: str = "max-pressure"
    seed: int = Field(1, ge=0, le=2**31 - 1)
    duration_s: float | None = Field(None, gt=0, description="simulated seconds; default: the scenario's window")
    sumocfg: Path | None = None
    net: Path | None = None
    routes: list[Path] = Field(default_factory=list)
    out_dir: Path = Path("runs")
    step_length_s: float = Field(1.0, gt=0, le=5)
    interval_s: float = Field(60.0, gt=0, description="time-series and record interval")
    emissions: bool = True
    gui: bool = False
    remote_port: int | None = None
    timing: TimingConfig = Field(default_factory=TimingConfig)
    shield: ShieldSettings = Field(default_factory=ShieldSettings)
    controller_options: dict = Field(default_factory=dict)

    @field_validator("controller")
    @classmethod
    def _known_controller(cls, v: str) -> str:
        from ..control.base import available

        kind = v.split(":", 1)[0]
        if kind not in available():
            raise ValueError(f"unknown controller {v!r}; choose from {', '.join(available())}")
        return v
