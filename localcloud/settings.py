"""What the local cloud's time and faults look like: delay profiles and fault rates,
changeable at run time through the control API (POST /_localcloud/settings)."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field

# Seconds. "realistic" keeps AWS's proportions at about a tenth of its times
# (RDS ~5-10 min to create, an ALB ~2-3 min, an instance ~30-60 s to boot, ENIs
# lingering minutes after an ALB or RDS is deleted), so a test run stays minutes long.
PROFILES: dict[str, dict[str, float]] = {
    "instant": {
        "rds_create": 0.0,
        "rds_delete": 0.0,
        "alb_create": 0.0,
        "instance_boot": 0.0,
        "eni_linger": 0.0,
    },
    "realistic": {
        "rds_create": 40.0,
        "rds_delete": 20.0,
        "alb_create": 15.0,
        "instance_boot": 5.0,
        "eni_linger": 10.0,
    },
}


@dataclass
class Settings:
    profile: str = "instant"
    delays: dict[str, float] = field(default_factory=lambda: dict(PROFILES["instant"]))
    # Share of AWS API calls answered with a throttling error, and with a 5xx.
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    # How long a terminated instance gets between SIGTERM and SIGKILL.
    shutdown_grace: float = 60.0

    def update(self, changes: dict) -> None:
        if "profile" in changes:
            name = changes["profile"]
            if name not in PROFILES:
                raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
            self.profile = name
            self.delays = dict(PROFILES[name])
        for key, value in changes.get("delays", {}).items():
            if key not in self.delays:
                raise ValueError(f"unknown delay {key!r}; known: {', '.join(self.delays)}")
            self.delays[key] = float(value)
        for key in ("throttle_rate", "error_rate"):
            if key in changes:
                rate = float(changes[key])
                if not 0.0 <= rate <= 0.9:
                    raise ValueError(f"{key} must be between 0 and 0.9")
                setattr(self, key, rate)
        if "shutdown_grace" in changes:
            self.shutdown_grace = float(changes["shutdown_grace"])

    def as_dict(self) -> dict:
        return asdict(self)


SETTINGS = Settings()
# Held by every request into moto and by every change the cloud makes to moto's state:
# moto's models are not thread-safe.
LOCK = threading.RLock()
