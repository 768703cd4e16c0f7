"""Target health from real HTTP probes, with each target group's path, port, interval,
timeout, matcher and thresholds: a registered target is `initial` until it passes the
healthy threshold (then `healthy`) or fails the unhealthy threshold (then `unhealthy`);
a deregistered target is `draining` for the group's deregistration delay, then gone."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger("localcloud.health")


@dataclass
class Target:
    group: str
    id: str
    port: int
    state: str = "initial"
    reason: str | None = "Elb.RegistrationInProgress"
    description: str | None = "Target registration is in progress"
    ok: int = 0
    failed: int = 0
    next_probe: float = 0.0
    drain_until: float = 0.0


def matches(matcher: str, status: int) -> bool:
    for part in str(matcher or "200").split(","):
        part = part.strip()
        if "-" in part:
            low, high = part.split("-", 1)
            if int(low) <= status <= int(high):
                return True
        elif part and int(part) == status:
            return True
    return False


class Health:
    def __init__(self, cloud: Any):
        self.cloud = cloud
        self.targets: dict[tuple[str, str], Target] = {}
        self.session: aiohttp.ClientSession | None = None

    def state_of(self, group: str, target: str) -> tuple[str, str | None, str | None] | None:
        t = self.targets.get((group, target))
        return None if t is None else (t.state, t.reason, t.description)

    def draining(self, group: str) -> list[tuple[str, int]]:
        return [(t.id, t.port) for t in self.targets.values() if t.group == group and t.state == "draining"]

    def healthy(self, group: str) -> list[Target]:
        return [t for t in self.targets.values() if t.group == group and t.state == "healthy"]

    def serving(self, group: str) -> list[Target]:
        """Where a load balancer sends new requests: healthy targets, or, when none is
        healthy, every registered one (ALB's fail-open)."""
        healthy = self.healthy(group)
        if healthy:
            return healthy
        return [t for t in self.targets.values() if t.group == group and t.state in ("unhealthy", "initial")]

    def deregistered(self, group: str, target: str, delay: float) -> None:
        """DeregisterTargets: draining from that moment, as AWS lists it (called under the
        moto lock, from the request)."""
        t = self.targets.get((group, target))
        if t is not None and t.state != "draining":
            t.state, t.reason = "draining", "Target.DeregistrationInProgress"
            t.description = "Target deregistration is in progress"
            t.drain_until = time.time() + delay

    def sync(self, groups: list[Any]) -> None:
        """Follow registrations (called under the moto lock)."""
        now = time.time()
        seen = set()
        for g in groups:
            delay = float(g.attributes.get("deregistration_delay.timeout_seconds", 300))
            for tid, t in g.targets.items():
                key = (g.arn, tid)
                seen.add(key)
                target = self.targets.get(key)
                if target is None or target.state == "draining":
                    self.targets[key] = Target(g.arn, tid, int(t.get("Port", g.port)), next_probe=now)
            for key, target in list(self.targets.items()):
                if key[0] == g.arn and key not in seen and target.state != "draining":
                    target.state, target.reason = "draining", "Target.DeregistrationInProgress"
                    target.description = "Target deregistration is in progress"
                    target.drain_until = now + delay
        live = {g.arn for g in groups}
        for key, target in list(self.targets.items()):
            if key[0] not in live or (target.state == "draining" and target.drain_until <= now):
                del self.targets[key]

    async def probe_all(self, groups: dict[str, Any]) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        now = time.time()
        due = [t for t in self.targets.values() if t.state != "draining" and t.next_probe <= now and t.group in groups]
        await asyncio.gather(*(self.probe(t, groups[t.group]) for t in due))

    async def probe(self, t: Target, g: Any) -> None:
        t.next_probe = time.time() + float(g.health_check_interval_seconds)
        address = self.cloud.target_address(t.id)
        port = t.port if g.health_check_port in (None, "traffic-port") else int(g.health_check_port)
        ok, reason, description = False, "Target.Timeout", "Request timed out"
        if address is None:
            reason, description = "Target.FailedHealthChecks", "Health checks failed (instance not reachable)"
        else:
            url = f"http://{address}:{port}{g.health_check_path or '/'}"
            try:
                timeout = aiohttp.ClientTimeout(total=float(g.health_check_timeout_seconds))
                async with self.session.get(url, timeout=timeout, allow_redirects=False) as r:
                    await r.read()
                    ok = matches((g.matcher or {}).get("HttpCode", "200"), r.status)
                    if not ok:
                        reason = "Target.ResponseCodeMismatch"
                        description = f"Health checks failed with these codes: [{r.status}]"
            except asyncio.TimeoutError:
                pass
            except aiohttp.ClientError:
                reason, description = "Target.FailedHealthChecks", "Health checks failed"
        if t.state == "draining":
            return
        if ok:
            t.ok, t.failed = t.ok + 1, 0
            if t.state != "healthy" and t.ok >= int(g.healthy_threshold_count):
                t.state, t.reason, t.description = "healthy", None, None
                log.info("target %s: healthy", t.id)
        else:
            t.ok, t.failed = 0, t.failed + 1
            if t.state == "healthy" or t.state == "initial":
                if t.failed >= int(g.unhealthy_threshold_count):
                    t.state, t.reason, t.description = "unhealthy", reason, description
                    log.info("target %s: unhealthy (%s)", t.id, reason)
            elif t.state == "unhealthy":
                t.reason, t.description = reason, description

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
