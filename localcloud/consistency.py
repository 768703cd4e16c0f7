"""AWS's eventual consistency, which moto does not have:

- after a create, for a random 0..`consistency_lag` seconds, calls that name the new
  id answer the service's not-found error and describes filtered by tags do not list it;
  a new instance profile is refused by Auto Scaling for `profile_lag` seconds;
- after a delete, `ListSecrets`, `ListBuckets` and `GetRole` still show the resource for
  `listing_lag` seconds;
- a force-deleted secret's name and a deleted bucket's name are refused for
  `name_reuse_lag` seconds.

The WSGI front calls `before` (which may answer instead of moto) and `after` (which may
rewrite moto's answer); the describe patches hide what is not visible yet."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from typing import Any, Callable

from .settings import LOCK, SETTINGS
from .wire import Call

ACCOUNT = "123456789012"

# EC2 creates and the element of their answer that holds the new id.
EC2_CREATES = {
    "CreateVpc": "vpcId",
    "CreateSubnet": "subnetId",
    "CreateSecurityGroup": "groupId",
    "CreateRouteTable": "routeTableId",
    "CreateInternetGateway": "internetGatewayId",
    "AllocateAddress": "allocationId",
    "CreateNatGateway": "natGatewayId",
    "CreateVpcEndpoint": "vpcEndpointId",
    "CreateLaunchTemplate": "launchTemplateId",
    "RunInstances": "instanceId",
}
# id prefix -> EC2's not-found code.
EC2_NOT_FOUND = {
    "vpc-": "InvalidVpcID.NotFound",
    "subnet-": "InvalidSubnetID.NotFound",
    "sg-": "InvalidGroup.NotFound",
    "rtb-": "InvalidRouteTableID.NotFound",
    "igw-": "InvalidInternetGatewayID.NotFound",
    "eipalloc-": "InvalidAllocationID.NotFound",
    "nat-": "NatGatewayNotFound",
    "vpce-": "InvalidVpcEndpointId.NotFound",
    "lt-": "InvalidLaunchTemplateId.NotFound",
    "i-": "InvalidInstanceID.NotFound",
}
ID = re.compile(r"^(vpc|subnet|sg|rtb|igw|eipalloc|nat|vpce|lt|i)-[0-9a-f]+$")

_current = threading.local()


def current() -> Call | None:
    """The request being answered on this thread (moto runs it here, under the lock)."""
    return getattr(_current, "call", None)


class Refusal(Exception):
    """Answer the request with this error instead of passing it to moto."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _tag_filtered(call: Call) -> bool:
    filters = call.params.get("Filters") or call.params.get("Filter") or []
    return any(str(f.get("Name", "")).startswith("tag") for f in filters if isinstance(f, dict))


class Consistency:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hidden: dict[str, float] = {}  # id (or "profile:<arn>") -> visible at
        self.stale_secrets: dict[str, tuple[dict, float]] = {}
        self.stale_buckets: dict[str, tuple[str, float]] = {}
        self.stale_roles: dict[str, tuple[bytes, float]] = {}
        self.role_answers: dict[str, bytes] = {}
        self.busy_names: dict[tuple[str, str], float] = {}
        self.refused = 0

    # ---- bookkeeping ----------------------------------------------------------------

    def _hide(self, key: str, lag: float) -> None:
        if lag > 0:
            with self.lock:
                self.hidden[key] = time.time() + random.uniform(0, lag)

    def is_hidden(self, key: str) -> bool:
        with self.lock:
            until = self.hidden.get(key)
            if until is None:
                return False
            if until <= time.time():
                del self.hidden[key]
                return False
            return True

    def visible_at(self, key: str) -> float:
        with self.lock:
            return self.hidden.get(key, 0.0)

    def profile_created(self, arn: str) -> None:
        self._hide(f"profile:{arn}", SETTINGS.aws["profile_lag"])

    # ---- before moto ----------------------------------------------------------------

    def before(self, call: Call, backends: Any) -> None:
        _current.call = call
        svc, op, p = call.service, call.operation, call.params
        now = time.time()
        if svc == "ec2":
            if op.startswith("Describe"):
                # Asking by id for something not visible yet fails; filters just miss it.
                values = [s for k, v in p.items() if k.endswith(("Ids", "Id")) for s in _strings(v)]
            else:
                values = [s for k, v in p.items() if k not in ("TagSpecifications", "ClientToken") for s in _strings(v)]
            for s in values:
                if ID.match(s) and self.is_hidden(s):
                    code = next(c for prefix, c in EC2_NOT_FOUND.items() if s.startswith(prefix))
                    self._refuse(code, f"The ID '{s}' does not exist")
        elif svc == "elbv2":
            if op == "CreateTargetGroup" and self.is_hidden(p.get("VpcId", "")):
                self._refuse("ValidationError", f"The VPC ID '{p['VpcId']}' is not found")
            if op in ("CreateLoadBalancer", "SetSubnets"):
                for s in p.get("Subnets", []):
                    if self.is_hidden(s):
                        self._refuse("SubnetNotFound", f"The subnet ID '{s}' is not valid")
            if op in ("CreateLoadBalancer", "SetSecurityGroups"):
                for g in p.get("SecurityGroups", []):
                    if self.is_hidden(g):
                        self._refuse("InvalidSecurityGroup", f"The security group '{g}' does not exist")
            if op == "RegisterTargets":
                for t in p.get("Targets", []):
                    if self.is_hidden(t.get("Id", "")):
                        self._refuse("InvalidTarget", f"The following targets are not in a running state and cannot be registered: '{t['Id']}'")
        elif svc == "rds" and op == "CreateDBSubnetGroup":
            for s in p.get("SubnetIds", []):
                if self.is_hidden(s):
                    self._refuse("InvalidSubnet", f"The subnet {s} does not exist")
        elif svc == "autoscaling" and op in ("CreateAutoScalingGroup", "UpdateAutoScalingGroup"):
            for s in [x for x in (p.get("VPCZoneIdentifier") or "").split(",") if x]:
                if self.is_hidden(s.strip()):
                    self._refuse("ValidationError", f"The subnet ID '{s}' does not exist")
            spec = p.get("LaunchTemplate") or {}
            template = spec.get("LaunchTemplateId")
            if template and self.is_hidden(template):
                self._refuse("ValidationError", f"You must use a valid fully-formed launch template. The specified launch template, with template ID {template}, does not exist.")
            arn = backends.launch_template_profile(call.region, spec)
            if arn and self.is_hidden(f"profile:{arn}"):
                self._refuse("ValidationError", f"You must use a valid fully-formed launch template. Value ({arn}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN")
        elif svc == "secretsmanager" and op == "CreateSecret":
            if self._busy("secret", p.get("Name", ""), now):
                self._refuse("InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
        elif svc == "s3" and op == "CreateBucket":
            if self._busy("bucket", call.labels.get("Bucket", ""), now):
                self._refuse("OperationAborted", "A conflicting conditional operation is currently in progress against this resource. Please try again.", 409)
        elif svc == "iam" and op == "GetRole":
            stale = self.stale_roles.get(p.get("RoleName", ""))
            if stale and stale[1] > now:
                raise Stale(stale[0], "text/xml")
        if svc == "secretsmanager" and op == "DeleteSecret":
            entry = backends.secret_entry(call.region, p.get("SecretId", ""))
            if entry is not None:
                call.captured = entry

    def _busy(self, kind: str, name: str, now: float) -> bool:
        until = self.busy_names.get((kind, name), 0.0)
        return until > now

    def _refuse(self, code: str, message: str, status: int = 400) -> None:
        self.refused += 1
        raise Refusal(code, message, status)

    # ---- after moto -----------------------------------------------------------------

    def after(self, call: Call, status: int, body: bytes) -> bytes:
        _current.call = None
        if status >= 300:
            return body
        svc, op, p = call.service, call.operation, call.params
        now = time.time()
        aws = SETTINGS.aws
        if svc == "ec2" and op in EC2_CREATES:
            element = EC2_CREATES[op]
            ids = re.findall(rf"<{element}>([^<]+)</{element}>".encode(), body)
            for rid in ids if op == "RunInstances" else ids[:1]:
                self._hide(rid.decode(), aws["consistency_lag"])
        elif svc == "iam" and op in ("CreateInstanceProfile", "AddRoleToInstanceProfile"):
            m = re.search(rb"<Arn>(arn:aws:iam::[^<]+:instance-profile/[^<]+)</Arn>", body)
            arn = m.group(1).decode() if m else f"arn:aws:iam::{ACCOUNT}:instance-profile/{p.get('InstanceProfileName', '')}"
            self.profile_created(arn)
        elif svc == "iam" and op == "GetRole":
            self.role_answers[p.get("RoleName", "")] = body
        elif svc == "iam" and op == "DeleteRole":
            cached = self.role_answers.pop(p.get("RoleName", ""), None)
            if cached and aws["listing_lag"] > 0:
                self.stale_roles[p.get("RoleName", "")] = (cached, now + aws["listing_lag"])
        elif svc == "iam" and op == "CreateRole":
            self.stale_roles.pop(p.get("RoleName", ""), None)
        elif svc == "secretsmanager" and op == "DeleteSecret":
            name = json.loads(body or b"{}").get("Name") or p.get("SecretId", "")
            entry = getattr(call, "captured", None)
            if entry is not None and aws["listing_lag"] > 0:
                self.stale_secrets[name] = (entry, now + aws["listing_lag"])
            if p.get("ForceDeleteWithoutRecovery") and aws["name_reuse_lag"] > 0:
                self.busy_names[("secret", name)] = now + aws["name_reuse_lag"]
        elif svc == "secretsmanager" and op in ("CreateSecret", "RestoreSecret"):
            self.stale_secrets.pop(p.get("Name") or p.get("SecretId", ""), None)
        elif svc == "secretsmanager" and op == "ListSecrets":
            return self._stale_secret_listing(p, body, now)
        elif svc == "s3" and op == "DeleteBucket":
            bucket = call.labels.get("Bucket", "")
            if aws["listing_lag"] > 0:
                self.stale_buckets[bucket] = (time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), now + aws["listing_lag"])
            if aws["name_reuse_lag"] > 0:
                self.busy_names[("bucket", bucket)] = now + aws["name_reuse_lag"]
        elif svc == "s3" and op == "CreateBucket":
            self.stale_buckets.pop(call.labels.get("Bucket", ""), None)
        elif svc == "s3" and op == "ListBuckets":
            return self._stale_bucket_listing(body, now)
        return body

    def _stale_secret_listing(self, p: dict, body: bytes, now: float) -> bytes:
        stale = [(n, e) for n, (e, until) in self.stale_secrets.items() if until > now]
        if not stale:
            return body
        doc = json.loads(body or b"{}")
        listed = {s.get("Name") for s in doc.get("SecretList", [])}
        for name, entry in stale:
            if name not in listed and _secret_matches(entry, p.get("Filters") or []):
                doc.setdefault("SecretList", []).append(entry)
        return json.dumps(doc, default=str).encode()

    def _stale_bucket_listing(self, body: bytes, now: float) -> bytes:
        extra = b"".join(
            f"<Bucket><Name>{name}</Name><CreationDate>{created}</CreationDate></Bucket>".encode()
            for name, (created, until) in self.stale_buckets.items()
            if until > now and f"<Name>{name}</Name>".encode() not in body
        )
        if not extra:
            return body
        if b"</Buckets>" in body:
            return body.replace(b"</Buckets>", extra + b"</Buckets>", 1)
        return body.replace(b"<Buckets/>", b"<Buckets>" + extra + b"</Buckets>", 1)

    def done(self) -> None:
        _current.call = None


class Stale(Exception):
    """Answer with an earlier answer (a listing that has not caught up with a delete)."""

    def __init__(self, body: bytes, kind: str):
        super().__init__("stale")
        self.body, self.kind = body, kind


def _secret_matches(entry: dict, filters: list) -> bool:
    """ListSecrets' filters are prefix matches."""
    tags = entry.get("Tags") or []
    for f in filters:
        key, values = f.get("Key"), f.get("Values") or []
        if key == "name":
            ok = any(str(entry.get("Name", "")).startswith(v) for v in values)
        elif key == "tag-key":
            ok = any(str(t.get("Key", "")).startswith(v) for t in tags for v in values)
        elif key == "tag-value":
            ok = any(str(t.get("Value", "")).startswith(v) for t in tags for v in values)
        else:
            ok = True
        if not ok:
            return False
    return True


def patch_describes(consistency: Consistency) -> None:
    """Describes filtered by tags do not list what was created moments ago."""
    from moto.ec2.models import elastic_ip_addresses, instances, internet_gateways, launch_templates
    from moto.ec2.models import nat_gateways, route_tables, security_groups, subnets, vpcs

    def hiding(cls: Any, method: str, key: Callable[[Any], str]) -> None:
        original = getattr(cls, method)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(self, *args, **kwargs)
            call = current()
            if call is None or not _tag_filtered(call):
                return result
            return [r for r in result if not consistency.is_hidden(key(r))]

        setattr(cls, method, wrapper)

    hiding(vpcs.VPCBackend, "describe_vpcs", lambda r: r.id)
    hiding(vpcs.VPCBackend, "describe_vpc_endpoints", lambda r: r.id)
    hiding(subnets.SubnetBackend, "describe_subnets", lambda r: r.id)
    hiding(security_groups.SecurityGroupBackend, "describe_security_groups", lambda r: r.id)
    hiding(route_tables.RouteBackend, "describe_route_tables", lambda r: r.id)
    hiding(internet_gateways.InternetGatewayBackend, "describe_internet_gateways", lambda r: r.id)
    hiding(nat_gateways.NatGatewayBackend, "describe_nat_gateways", lambda r: r.id)
    hiding(elastic_ip_addresses.ElasticAddressBackend, "describe_addresses", lambda r: r.allocation_id)
    hiding(launch_templates.LaunchTemplateBackend, "describe_launch_templates", lambda r: r.id)

    original = instances.InstanceBackend.all_reservations

    def all_reservations(self: Any, filters: Any = None) -> Any:
        result = original(self, filters)
        call = current()
        if call is None or not _tag_filtered(call):
            return result
        kept = []
        for r in result:
            visible = [i for i in r.instances if not consistency.is_hidden(i.id)]
            if visible:
                r.instances = visible  # all_reservations hands out shallow copies
                kept.append(r)
        return kept

    instances.InstanceBackend.all_reservations = all_reservations


class Backends:
    """What the consistency layer asks of moto's state (under the moto lock)."""

    def launch_template_profile(self, region: str, spec: dict) -> str | None:
        from moto.ec2.models import ec2_backends
        from moto.iam.models import iam_backends

        template_id, version = spec.get("LaunchTemplateId"), spec.get("Version") or "$Default"
        if not template_id:
            return None
        with LOCK:
            ec2 = ec2_backends[ACCOUNT][region]
            lt = ec2.launch_templates.get(template_id)
            if lt is None:
                return None
            try:
                if version == "$Latest":
                    data = lt.latest_version().data
                elif version == "$Default":
                    data = lt.default_version().data
                else:
                    data = lt.get_version(int(version)).data
            except Exception:
                return None
            profile = data.get("IamInstanceProfile") or {}
            if profile.get("Arn"):
                return profile["Arn"]
            if profile.get("Name"):
                p = iam_backends[ACCOUNT]["global"].instance_profiles.get(profile["Name"])
                return p.arn if p is not None else None
        return None

    def secret_entry(self, region: str, secret_id: str) -> dict | None:
        from moto.secretsmanager.models import secretsmanager_backends

        with LOCK:
            backend = secretsmanager_backends[ACCOUNT][region]
            for secret in backend.secrets.values():
                if secret_id in (getattr(secret, "name", None), getattr(secret, "arn", None)):
                    try:
                        return json.loads(json.dumps(secret.to_dict(), default=str))
                    except Exception:
                        return None
        return None
