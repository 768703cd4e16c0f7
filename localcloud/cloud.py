"""The local cloud: moto in-process behind the fault layer, and a reconciler that makes
moto's bookkeeping real (instances, databases, target health, load balancers, Auto
Scaling replacements, resources that linger after deletion)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from moto.autoscaling.models import autoscaling_backends
from moto.ec2.models import ec2_backends
from moto.elbv2.models import elbv2_backends
from moto.iam.models import iam_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.rds.models import rds_backends
from werkzeug.serving import make_server

from . import acm
from . import cbor, cloudwatch
from . import logs as cloudwatch_logs
from . import patches
from .balancer import Balancers
from .consistency import patch_describes
from .faults import Faults
from .health import Health
from .instances import Instances
from .net import Network
from .pki import TRUSTSTORE_HOST, Pki
from .rds import Databases
from .scaling import Scaling
from .scaling import apply as scaling_apply
from .settings import LOCK, SETTINGS
from .ssm import RunCommand

ACCOUNT = "123456789012"
log = logging.getLogger("localcloud")


def _resource_id(item: Any) -> str | None:
    """moto hands out ids as strings, models or dicts, depending on the service."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in ("SubnetIdentifier", "VpcSecurityGroupId", "GroupId", "SubnetId", "id"):
            if key in item:
                return str(item[key])
        return None
    return getattr(item, "id", None) or getattr(item, "subnet_id", None)


class LocalCloud:
    def __init__(self, state_dir: str, port: int):
        self.state_dir = state_dir
        self.net = Network.claim()
        self.pki = Pki(state_dir)
        self.instances = Instances(self, self.net, state_dir)
        self.databases = Databases(self, state_dir)
        self.health = Health(self)
        self.balancers = Balancers(self)
        self.scaling = Scaling(self)
        self._lingering: list[tuple[set[str], float, str]] = []
        patches.apply(self)
        cloudwatch_logs.apply()
        cloudwatch.apply()
        acm.apply(self)
        scaling_apply()
        self.faults = Faults(DomainDispatcherApplication(create_backend_app), self.control)
        patch_describes(self.faults.consistency)
        self.faults.run_command = RunCommand(self)
        self.bridge = cbor.Bridge(self.faults, self.faults)
        self.server = make_server(
            self.net.endpoint_ip, port, self.bridge, threaded=True, request_handler=MotoRequestHandler
        )
        self.port = self.server.server_address[1]
        self.endpoint = f"http://{self.net.endpoint_ip}:{self.port}"
        self.instance_endpoint = self.endpoint
        self.stopping = asyncio.Event()

    # ---- what patches and components ask -------------------------------------------

    def linger(self, ids: Iterable[Any], more: Iterable[Any], seconds: float, holder: str) -> None:
        """Security groups and subnets stay in use by `holder`'s interfaces for `seconds`."""
        if seconds > 0:
            found = {_resource_id(i) for i in [*ids, *more]} - {None}
            self._lingering.append((found, time.time() + seconds, f"network interfaces of deleted {holder}"))

    def interface_using(self, resource: str, kind: str) -> str | None:
        now = time.time()
        self._lingering = [entry for entry in self._lingering if entry[1] > now]
        for ids, _, holder in self._lingering:
            if resource in ids:
                return holder
        for region in ec2_backends[ACCOUNT].values():
            for instance in region.all_instances():
                if instance.state in ("terminated",):
                    continue
                if kind == "subnet" and instance.subnet_id == resource:
                    return f"instance {instance.id}"
                if kind == "group" and resource in {g.id for g in instance.security_groups}:
                    return f"instance {instance.id}"
        return None

    def target_address(self, instance_id: str) -> str | None:
        box = self.instances.boxes.get(instance_id)
        if box is None or box.state != "running":
            return None
        return box.link_ip

    def listener_action(self, listener_arn: str) -> dict | None:
        with LOCK:
            for region in elbv2_backends[ACCOUNT].values():
                for lb in region.load_balancers.values():
                    listener = lb.listeners.get(listener_arn)
                    if listener is None:
                        continue
                    for action in listener.default_actions:
                        data = dict(action.data)
                        if data.get("Type") == "forward" and "TargetGroupArn" not in data:
                            groups = data.get("ForwardConfig", {}).get("TargetGroups", [])
                            if groups:
                                data["TargetGroupArn"] = groups[0]["TargetGroupArn"]
                        return data
        return None

    def console_output(self, instance_id: str) -> str:
        """What EC2's console shows: cloud-init's output, and what units send to the
        console (StandardOutput=journal+console). `aws.console_from_units` off: every
        unit's journal, as this rig once showed (kinder than EC2)."""
        box = self.instances.boxes.get(instance_id)
        if box is None:
            return "(the instance has not booted)\n"
        parts = [box.tail("/var/log/cloud-init-output.log", 60)]
        if SETTINGS.aws["console_from_units"]:
            parts.append(box.tail("/var/log/console", 60))
        else:
            journal = box.file("/var/log/journal")
            try:
                import os

                for name in sorted(os.listdir(journal)):
                    parts.append(f"--- journalctl -u {name[:-4]} ---\n" + box.tail(f"/var/log/journal/{name}", 40))
            except OSError:
                pass
        return "\n".join(p for p in parts if p) + "\n"

    def hosts(self) -> str:
        lines = ["127.0.0.1 localhost", "::1 localhost", f"{self.net.endpoint_ip} {TRUSTSTORE_HOST}"]
        lines += [f"{address} {name}" for name, address in sorted(self.databases.hosts().items())]
        return "\n".join(lines) + "\n"

    # ---- the reconciler ------------------------------------------------------------

    def _metadata(self, region: str, instance: Any, ec2: Any) -> dict:
        version = getattr(instance, "_lc_launch_template_version", None)
        role, imdsv2 = None, False
        template = getattr(instance, "_lc_template", None)
        data: dict = {}
        group = getattr(instance, "autoscaling_group", None)
        if group is not None and group.ec2_launch_template is not None:
            lt = group.ec2_launch_template
            data = lt.get_version(version or group.launch_template_version).data
        elif template is not None:
            data = template
        profile_arn = (data.get("IamInstanceProfile") or {}).get("Arn")
        imdsv2 = (data.get("MetadataOptions") or {}).get("HttpTokens") == "required"
        if profile_arn:
            iam = iam_backends[ACCOUNT]["global"]
            for profile in iam.instance_profiles.values():
                if profile.arn == profile_arn and profile.roles:
                    role = profile.roles[0].name
        seed = hashlib.sha256(f"{instance.id}:{int(time.time() // 3600)}".encode()).hexdigest()
        now = datetime.now(timezone.utc)
        # A fresh instance (more so of a fresh role) has no credentials for its first
        # seconds: IMDS answers 404 until then.
        box = self.instances.boxes.get(instance.id)
        booted = box.started if box is not None and box.started else time.time()
        credentials_at = booted + float(SETTINGS.aws["imds_credentials_delay"])
        if profile_arn:
            credentials_at = max(credentials_at, self.faults.consistency.visible_at(f"profile:{profile_arn}"))
        return {
            "instance_id": instance.id,
            "private_ip": instance.private_ip,
            "region": region,
            "availability_zone": getattr(instance.placement, "zone", None) or f"{region}a",
            "account_id": ACCOUNT,
            "imdsv2_required": imdsv2,
            "role": role,
            "credentials_at": credentials_at,
            "credentials": {
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": "ASIA" + seed[:16].upper(),
                "SecretAccessKey": seed[16:56],
                "Token": "localcloud-" + seed[:48],
                "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Expiration": (now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }

    def _observe(self) -> tuple[dict, list, dict]:
        """One pass over moto's state, under its lock."""
        groups_by_arn: dict[str, Any] = {}
        balancers: list[Any] = []
        listeners: dict[str, list[Any]] = {}
        with LOCK:
            now = time.time()
            for region, rds in rds_backends[ACCOUNT].items():
                for ident, db in list(rds.databases.items()):
                    if getattr(db, "_lc_gone_at", None) and db._lc_gone_at <= now:
                        del rds.databases[ident]
            for region, ec2 in ec2_backends[ACCOUNT].items():
                for instance in ec2.all_instances():
                    self.instances.observe(instance, self._metadata(region, instance, ec2))
            for region, elb in elbv2_backends[ACCOUNT].items():
                for lb in elb.load_balancers.values():
                    lb.activate()
                    balancers.append(lb)
                    listeners[lb.arn] = list(lb.listeners.values())
                groups_by_arn.update(elb.target_groups)
            self.health.sync(list(groups_by_arn.values()))
            for region, asg in autoscaling_backends[ACCOUNT].items():
                for group in list(asg.autoscaling_groups.values()):
                    self._auto_scale(asg, group)
                    self.scaling.evaluate(asg, group)
        return groups_by_arn, balancers, listeners

    def _auto_scale(self, backend: Any, group: Any) -> None:
        """What Auto Scaling does that moto does not: replace instances that are gone or
        unhealthy (EC2 status, and ELB health after the grace period when the group uses
        it), and rebalance the zones, each unless its process is suspended."""
        now = time.time()
        ec2 = backend.ec2_backend
        suspended = {p["ProcessName"] for p in group.suspended_processes}
        doomed = []
        for state in list(group.instance_states):
            instance = state.instance
            if instance.state in ("terminated", "stopped", "shutting-down", "stopping"):
                group.instance_states.remove(state)
                continue
            if state.lifecycle_state == "Terminating":
                # Drained (deregistered, the target group's delay passed): terminate it.
                if getattr(state, "_lc_terminate_at", 0) <= now:
                    group.instance_states.remove(state)
                    ec2.terminate_instances([instance.id])
                continue
            box = self.instances.boxes.get(instance.id)
            launched = getattr(instance, "_lc_seen", None) or now
            instance._lc_seen = launched
            dead = box is not None and box.state == "dead"
            unhealthy = False
            if group.health_check_type == "ELB" and now - launched > float(group.health_check_grace_period or 0):
                for arn in group.target_group_arns:
                    st = self.health.state_of(arn, instance.id)
                    if st and st[0] == "unhealthy":
                        unhealthy = True
            if (dead or unhealthy) and not {"HealthCheck", "ReplaceUnhealthy"} & suspended:
                doomed.append((state, "instance dead" if dead else "ELB health"))
        for state, why in doomed:
            log.info("auto scaling %s: replacing %s (%s)", group.name, state.instance.id, why)
            self._remove(backend, group, state)
        # Instances being retired (Terminating, draining) are not capacity: a scale-out
        # while they drain launches at once, as Auto Scaling does.
        active = [s for s in group.instance_states if s.instance.state in ("pending", "running") and s.lifecycle_state != "Terminating"]
        missing = (group.desired_capacity or 0) - len(active)
        if missing > 0 and "Launch" not in suspended:
            group.replace_autoscaling_group_instances(missing, group.get_propagated_tags())
            backend.update_attached_target_groups(group.name)
        elif SETTINGS.aws["az_rebalance"] and not {"AZRebalance", "Launch", "Terminate"} & suspended:
            self._rebalance(backend, group, now)

    def _remove(self, backend: Any, group: Any, state: Any) -> None:
        iid = state.instance.id
        for arn in group.target_group_arns:
            tg = backend.elbv2_backend.target_groups.get(arn)
            if tg is not None and iid in tg.targets:
                tg.deregister([{"Id": iid}])
        group.instance_states.remove(state)
        backend.ec2_backend.terminate_instances([iid])

    def _drain_then_terminate(self, backend: Any, group: Any, state: Any) -> None:
        """As Auto Scaling retires an instance behind a load balancer: deregister it, let
        its connections drain for the target groups' delay, then terminate it."""
        delay = 0.0
        iid = state.instance.id
        for arn in group.target_group_arns:
            tg = backend.elbv2_backend.target_groups.get(arn)
            if tg is not None and iid in tg.targets:
                tg.deregister([{"Id": iid}])
                delay = max(delay, float(tg.attributes.get("deregistration_delay.timeout_seconds", 300)))
        state.lifecycle_state = "Terminating"
        state._lc_terminate_at = time.time() + delay

    def _rebalance(self, backend: Any, group: Any, now: float) -> None:
        """AZRebalance: when the zones' counts differ by more than one, launch in the
        shortest zone first, then, once that instance runs, terminate one in the longest
        (oldest launch template version first, then the oldest instance)."""
        from .patches import launch_instance_type, offered, subnet_zone

        ec2 = backend.ec2_backend
        kind = launch_instance_type(group) or group.instance_type
        subnets = [s for s in (group.vpc_zone_identifier or "").split(",") if s and offered(subnet_zone(ec2, s), kind)]
        if len(subnets) < 2:
            return
        if any(st.lifecycle_state == "Terminating" for st in group.instance_states):
            return  # one retirement at a time
        active = [s for s in group.instance_states if s.instance.state in ("pending", "running")]
        counts = {s: [st for st in active if st.instance.subnet_id == s] for s in subnets}
        pending = getattr(group, "_lc_rebalance_launch", None)
        if pending is not None:
            fresh = next((st for st in active if st.instance.id == pending), None)
            if fresh is None:
                group._lc_rebalance_launch = None
                return
            box = self.instances.boxes.get(pending)
            if box is None or box.state != "running":
                return
            # Capacity first: the new instance serves before an old one goes.
            for arn in group.target_group_arns:
                st = self.health.state_of(arn, pending)
                if st is None or st[0] != "healthy":
                    return
            # One too many now: retire one in the longest zone (the launch made room).
            longest = max(subnets, key=lambda s: (len(counts[s]), -subnets.index(s)))
            victims = [st for st in counts[longest] if st.instance.id != pending]
            group._lc_rebalance_launch = None
            if len(active) <= (group.desired_capacity or 0) or not victims:
                return
            from .scaling import launch_version  # `$Latest` / `$Default` as numbers (int() raised)

            victim = min(victims, key=lambda st: (launch_version(group, getattr(st.instance, "_lc_launch_template_version", None)), getattr(st.instance, "_lc_seen", 0)))
            log.info("auto scaling %s: AZRebalance terminates %s in %s", group.name, victim.instance.id, subnet_zone(ec2, longest))
            self._drain_then_terminate(backend, group, victim)
            return
        sizes = {s: len(v) for s, v in counts.items()}
        if max(sizes.values()) - min(sizes.values()) < 2:
            group._lc_uneven_since = None
            return
        since = getattr(group, "_lc_uneven_since", None)
        if since is None:
            group._lc_uneven_since = now
            return
        if now - since < float(SETTINGS.aws["az_rebalance_delay"]):
            return
        group._lc_uneven_since = None
        shortest = min(subnets, key=lambda s: (sizes[s], subnets.index(s)))
        before = {st.instance.id for st in group.instance_states}
        group.launch_in(shortest)
        backend.update_attached_target_groups(group.name)
        launched = [st.instance.id for st in group.instance_states if st.instance.id not in before]
        if launched:
            group._lc_rebalance_launch = launched[0]
            log.info("auto scaling %s: AZRebalance launches %s in %s", group.name, launched[0], subnet_zone(ec2, shortest))

    async def run(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.truststore = self.pki.serve_truststore(self.net.endpoint_ip)
        log.info("local cloud at %s (state in %s)", self.endpoint, self.state_dir)
        last_hosts = ""
        passes = 0
        while not self.stopping.is_set():
            passes += 1
            if passes % 40 == 0:
                log.debug("reconcile pass %d", passes)
            try:
                groups, balancers, listeners = self._observe()
                for sandbox in self.instances.due():
                    threading.Thread(target=self.instances.boot, args=(sandbox, self.hosts()), daemon=True).start()
                self.instances.check()
                hosts = self.hosts()
                if hosts != last_hosts:
                    self.instances.refresh_hosts(hosts)
                    last_hosts = hosts
                await self.health.probe_all(groups)
                await self.balancers.sync(balancers, listeners)
            except Exception:
                log.exception("reconcile pass failed")
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=0.25)
            except asyncio.TimeoutError:
                pass
        await self.close()

    async def close(self) -> None:
        log.info("stopping: instances, databases, load balancers")
        self.server.shutdown()
        self.truststore.shutdown()
        if self.faults.run_command is not None:
            self.faults.run_command.close()
        await asyncio.to_thread(self.instances.close)
        await asyncio.to_thread(self.databases.close)
        await self.balancers.close()
        await self.health.close()
        self.net.close()

    # ---- the control API (/_localcloud/...) -----------------------------------------

    def status(self) -> dict:
        return {
            "endpoint": self.endpoint,
            "settings": SETTINGS.as_dict(),
            "injected": self.faults.status(),
            "rpc_v2_cbor": dict(self.bridge.seen),
            "instances": [
                {
                    "id": b.instance_id,
                    "private_ip": b.private_ip,
                    "link_ip": b.link_ip,
                    "state": b.state,
                    "namespace": b.ns,
                    "processes": self.instances.processes_of(b),
                }
                for b in self.instances.sandboxes()
            ],
            "processes": self.instances.running_processes(),
            "balancers": self.balancers.mapping(),
            "scaling": self.scaling.status(),
            "databases": [
                {"id": s.identifier, "hostname": s.hostname, "address": s.address, "state": s.state}
                for s in list(self.databases.servers.values())
            ],
        }

    def control(self, environ: dict, start_response: Callable) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
            if method == "GET" and path == "/_localcloud/status":
                return self._json(start_response, 200, self.status())
            if method == "GET" and path == "/_localcloud/ca":
                # The public CA that signs the load balancers' HTTPS certificates.
                return self._json(start_response, 200, {"pem": self.pki.public_roots().decode()})
            if method == "POST" and path == "/_localcloud/settings":
                SETTINGS.update(body)
                return self._json(start_response, 200, SETTINGS.as_dict())
            if method == "POST" and path == "/_localcloud/faults":
                return self._json(start_response, 200, self.faults.add_rule(body))
            if method == "DELETE" and path == "/_localcloud/faults":
                self.faults.clear_rules()
                return self._json(start_response, 200, {"cleared": True})
            parts = path.strip("/").split("/")
            if len(parts) == 4 and parts[1] == "instances" and method == "POST" and parts[3] == "kill":
                ok = self.instances.kill(parts[2])
                return self._json(start_response, 200 if ok else 404, {"killed": ok})
            if len(parts) == 4 and parts[1] == "instances" and method == "POST" and parts[3] == "freeze":
                stopped = self.instances.freeze(parts[2], str(body.get("match", "gallery serve")))
                return self._json(start_response, 200 if stopped else 404, {"stopped": stopped})
            if len(parts) == 4 and parts[1] == "databases" and method == "POST" and parts[3] == "outage":
                ok = self.databases.outage(parts[2], float(body.get("seconds", 60)))
                return self._json(start_response, 200 if ok else 404, {"outage": ok})
            if len(parts) == 4 and parts[1] == "instances" and method == "GET" and parts[3] == "console":
                return self._json(start_response, 200, {"output": self.console_output(parts[2])})
            return self._json(start_response, 404, {"error": f"no such control call: {method} {path}"})
        except (ValueError, KeyError) as e:
            return self._json(start_response, 400, {"error": str(e)})
        except Exception as e:  # a bug of ours: say what it was, in the answer and the log
            log.exception("control call %s %s failed", method, path)
            return self._json(start_response, 500, {"error": f"{type(e).__name__}: {e}"})

    @staticmethod
    def _json(start_response: Callable, code: int, value: Any) -> list[bytes]:
        data = json.dumps(value, indent=1).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[code]
        start_response(f"{code} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
