"""What the local cloud's time and faults look like: delay profiles, AWS's behaviours
that moto lacks (`aws`), and fault rates, changeable at run time through the control API
(POST /_localcloud/settings). Every knob is documented in README.md."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field

# Seconds. "realistic" keeps AWS's proportions at about a tenth of its times
# (RDS ~5-10 min to create, an ALB ~2-3 min, an instance ~30-60 s to boot, ENIs
# lingering minutes after an ALB or RDS is deleted), so a test run stays minutes long.
DELAYS: dict[str, dict[str, float]] = {
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
DELAYS["kind"] = dict(DELAYS["instant"])

# What AWS does that moto does not (README.md, "AWS as it really behaves"). Seconds, a
# rate, a flag (0/1), or a zone letter and instance families. On in every profile but
# "kind", which is moto's own forgiving world.
AWS: dict[str, dict] = {
    "instant": {
        "consistency_lag": 2.0,
        "profile_lag": 3.0,
        "listing_lag": 3.0,
        "name_reuse_lag": 3.0,
        "client_tokens": 1,
        "imds_credentials_delay": 2.0,
        "az_rebalance": 1,
        "az_rebalance_delay": 2.0,
        "unoffered_zone": "a",
        "unoffered_families": "t3,t3a",
        "validate": 1,
        "lost_answer_rate": 0.01,
        "console_from_units": 1,
        "pitr_interval": 1.0,
        "pitr_window": 3600.0,
        "invocation_lag": 1.0,
        "logs_visibility_lag": 1.0,
        "logs_page_events": 50,
        "acm_record_lag": 2.0,
        "acm_issue_delay": 1.0,
        "acm_in_use_lag": 2.0,
        "scaling_period": 2.0,
        "scaling_out_periods": 1,
        "scaling_in_periods": 3,
    },
    "realistic": {
        "consistency_lag": 5.0,
        "profile_lag": 10.0,
        "listing_lag": 10.0,
        "name_reuse_lag": 10.0,
        "client_tokens": 1,
        "imds_credentials_delay": 5.0,
        "az_rebalance": 1,
        "az_rebalance_delay": 5.0,
        "unoffered_zone": "a",
        "unoffered_families": "t3,t3a",
        "validate": 1,
        "lost_answer_rate": 0.02,
        "console_from_units": 1,
        "pitr_interval": 5.0,
        "pitr_window": 3600.0,
        "invocation_lag": 2.0,
        "logs_visibility_lag": 3.0,
        "logs_page_events": 50,
        "acm_record_lag": 5.0,
        "acm_issue_delay": 10.0,
        "acm_in_use_lag": 10.0,
        "scaling_period": 60.0,
        "scaling_out_periods": 3,
        "scaling_in_periods": 15,
    },
    "kind": {
        "consistency_lag": 0.0,
        "profile_lag": 0.0,
        "listing_lag": 0.0,
        "name_reuse_lag": 0.0,
        "client_tokens": 0,
        "imds_credentials_delay": 0.0,
        "az_rebalance": 0,
        "az_rebalance_delay": 0.0,
        "unoffered_zone": "",
        "unoffered_families": "",
        "validate": 0,
        "lost_answer_rate": 0.0,
        "console_from_units": 0,
        "pitr_interval": 1.0,
        "pitr_window": 3600.0,
        "invocation_lag": 0.0,
        "logs_visibility_lag": 0.0,
        "logs_page_events": 0,
        "acm_record_lag": 0.0,
        "acm_issue_delay": 0.0,
        "acm_in_use_lag": 0.0,
        "scaling_period": 2.0,
        "scaling_out_periods": 1,
        "scaling_in_periods": 3,
    },
}
PROFILES = list(DELAYS)


@dataclass
class Settings:
    profile: str = "instant"
    delays: dict[str, float] = field(default_factory=lambda: dict(DELAYS["instant"]))
    aws: dict = field(default_factory=lambda: dict(AWS["instant"]))
    # Share of AWS API calls answered with a throttling error, and with a 5xx.
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    # How long a terminated instance gets between SIGTERM and SIGKILL.
    shutdown_grace: float = 60.0

    def update(self, changes: dict) -> None:
        unknown = set(changes) - {"profile", "delays", "aws", "throttle_rate", "error_rate", "shutdown_grace"}
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(sorted(unknown))}")
        if "profile" in changes:
            name = changes["profile"]
            if name not in PROFILES:
                raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
            self.profile = name
            self.delays = dict(DELAYS[name])
            self.aws = dict(AWS[name])
        for key, value in changes.get("delays", {}).items():
            if key not in self.delays:
                raise ValueError(f"unknown delay {key!r}; known: {', '.join(self.delays)}")
            self.delays[key] = float(value)
        for key, value in changes.get("aws", {}).items():
            if key not in self.aws:
                raise ValueError(f"unknown aws behaviour {key!r}; known: {', '.join(self.aws)}")
            current = self.aws[key]
            parsed = str(value) if isinstance(current, str) else float(value)
            if key == "lost_answer_rate" and not 0.0 <= parsed <= 0.5:
                raise ValueError("aws.lost_answer_rate must be between 0 and 0.5")
            self.aws[key] = parsed
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
