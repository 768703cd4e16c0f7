"""Requests checked as AWS checks them: against the service model botocore ships
(required members, lengths, ranges, patterns, enums, unknown parameters), plus the name
rules AWS enforces beyond the models. A violation is refused in the service's own error
shape and counted (`/_localcloud/status` -> `violations`), so a test suite can fail on any."""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Any

from botocore.serialize import create_serializer

from .wire import Call

log = logging.getLogger("localcloud.validate")

# Query-protocol parameters that are the envelope, not the operation's input.
ENVELOPE = {"Action", "Version"}
ENVELOPE_PREFIXES = ("X-Amz-",)

# Keys an ALB target group accepts in ModifyTargetGroupAttributes (ELBv2 API reference).
TARGET_GROUP_ATTRIBUTES = {
    "deregistration_delay.timeout_seconds",
    "deregistration_delay.connection_termination.enabled",
    "stickiness.enabled",
    "stickiness.type",
    "stickiness.lb_cookie.duration_seconds",
    "stickiness.app_cookie.cookie_name",
    "stickiness.app_cookie.duration_seconds",
    "load_balancing.algorithm.type",
    "load_balancing.algorithm.anomaly_mitigation",
    "load_balancing.cross_zone.enabled",
    "slow_start.duration_seconds",
    "target_group_health.dns_failover.minimum_healthy_targets.count",
    "target_group_health.dns_failover.minimum_healthy_targets.percentage",
    "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
    "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
    "lambda.multi_value_headers.enabled",
    "preserve_client_ip.enabled",
    "proxy_protocol_v2.enabled",
    "target_health_state.unhealthy.connection_termination.enabled",
    "target_health_state.unhealthy.draining_interval_seconds",
    "target_failover.on_deregistration",
    "target_failover.on_unhealthy",
}
ELB_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")
RDS_ID = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|-(?!-))*")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


class Violation(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def check(call: Call, state: Any = None) -> None:
    """Raise Violation for the first thing AWS would refuse about this request."""
    if not call.parsed:
        return
    if call.model is None:
        raise Violation(_unknown_operation_code(call), f"The action {call.operation} is not valid for this web service.")
    shape = call.model.input_shape
    if shape is not None:
        _walk(call, shape, call.params, shape.name)
        _unknown(call, shape)
    _names(call, state)


def _unknown_operation_code(call: Call) -> str:
    return {"ec2": "InvalidAction", "s3": "MethodNotAllowed"}.get(call.service, "InvalidAction")


def _code(call: Call, kind: str) -> str:
    """The error code each service uses for a bad parameter."""
    if call.service == "ec2":
        return {"missing": "MissingParameter", "unknown": "UnknownParameter"}.get(kind, "InvalidParameterValue")
    if call.service == "rds":
        return {"missing": "MissingParameter"}.get(kind, "InvalidParameterValue")
    if call.service in ("secretsmanager",):
        return "InvalidParameterException"
    if call.service == "s3":
        return "InvalidArgument"
    return "ValidationError" if call.protocol == "query" else "ValidationException"


def _walk(call: Call, shape: Any, value: Any, path: str) -> None:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            return
        for name in shape.required_members:
            if value.get(name) is None:
                loc = shape.members[name].serialization.get("location")
                if call.service == "s3" and loc == "uri":
                    continue  # S3 routes by path; a missing label is another operation
                raise Violation(_code(call, "missing"), f"1 validation error detected: Value null at '{path}.{name}' failed to satisfy constraint: Member must not be null")
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                _walk(call, member, value[name], f"{path}.{name}")
        return
    if kind == "list":
        if not isinstance(value, list):
            return
        _length(call, meta, len(value), path, "length")
        for i, item in enumerate(value):
            _walk(call, shape.member, item, f"{path}.{i + 1}")
        return
    if kind == "map":
        if not isinstance(value, dict):
            return
        _length(call, meta, len(value), path, "length")
        for k, v in value.items():
            _walk(call, shape.key, k, f"{path}.key")
            _walk(call, shape.value, v, f"{path}.{k}")
        return
    if kind == "string":
        if not isinstance(value, str):
            return
        _length(call, meta, len(value), path, "length")
        enum = shape.enum
        # EC2's enums grow faster than clients are built: AWS itself accepts unknown
        # values for many of them, so only other services' enums are enforced.
        if enum and value not in enum and call.service != "ec2":
            raise Violation(_code(call, "value"), f"1 validation error detected: Value '{_short(value)}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = meta.get("pattern")
        if pattern and not _matches(pattern, value):
            raise Violation(_code(call, "value"), f"1 validation error detected: Value at '{path}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}")
        return
    if kind in ("integer", "long", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if "min" in meta and value < meta["min"]:
            raise Violation(_code(call, "value"), f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            raise Violation(_code(call, "value"), f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: Member must have value less than or equal to {meta['max']}")
        return
    if kind == "blob" and isinstance(value, (bytes, str)):
        _length(call, meta, len(value), path, "length")


def _length(call: Call, meta: dict, n: int, path: str, what: str) -> None:
    if "min" in meta and n < meta["min"]:
        raise Violation(_code(call, "value"), f"1 validation error detected: Value at '{path}' failed to satisfy constraint: Member must have {what} greater than or equal to {meta['min']}")
    if "max" in meta and n > meta["max"]:
        raise Violation(_code(call, "value"), f"1 validation error detected: Value at '{path}' failed to satisfy constraint: Member must have {what} less than or equal to {meta['max']}")


_PATTERNS: dict[str, Any] = {}


def _matches(pattern: str, value: str) -> bool:
    """Smithy patterns are ECMAScript regular expressions, not implicitly anchored."""
    if pattern not in _PATTERNS:
        try:
            _PATTERNS[pattern] = re.compile(pattern.replace("\\p{ASCII}", "\\x00-\\x7f"), re.DOTALL)
        except re.error:
            _PATTERNS[pattern] = None
    rx = _PATTERNS[pattern]
    return rx is None or rx.search(value) is not None


def _short(value: str) -> str:
    return value if len(value) <= 60 else value[:57] + "..."


def _unknown(call: Call, shape: Any) -> None:
    """Parameters the operation does not have: what the parsed input does not serialize back to."""
    if call.protocol in ("query", "ec2"):
        sent = {k for k in call.raw.keys() if k not in ENVELOPE and not k.startswith(ENVELOPE_PREFIXES)}
        try:
            serialized = create_serializer(call.protocol).serialize_to_request(call.params, call.model)["body"]
        except Exception:
            return
        known = set(serialized.keys()) if isinstance(serialized, dict) else set()
        extra = sorted(sent - known)
        if extra:
            raise Violation(_code(call, "unknown"), f"The parameter {extra[0]} is not recognized")
    elif call.protocol == "json" and isinstance(call.raw, dict):
        _unknown_json(call, shape, call.raw, shape.name)


def _unknown_json(call: Call, shape: Any, value: Any, path: str) -> None:
    if shape.type_name == "structure" and isinstance(value, dict):
        for k, v in value.items():
            if k not in shape.members:
                raise Violation("SerializationException" if call.service == "ssm" else _code(call, "unknown"),
                                f"Unknown parameter in input: \"{k}\" at '{path}', must be one of: {', '.join(shape.members)}")
            _unknown_json(call, shape.members[k], v, f"{path}.{k}")
    elif shape.type_name == "list" and isinstance(value, list):
        for item in value:
            _unknown_json(call, shape.member, item, path)


# ---- the rules beyond the models ------------------------------------------------------


def _names(call: Call, state: Any) -> None:
    p = call.params
    op = call.operation
    if call.service == "elbv2":
        if op == "CreateLoadBalancer":
            name = p.get("Name", "")
            if not ELB_NAME.match(name) or name.lower().startswith("internal-"):
                raise Violation("ValidationError", f"The load balancer name '{name}' is not valid: at most 32 letters, digits and hyphens, neither starting nor ending with a hyphen, and not starting with 'internal-'")
        if op == "CreateTargetGroup":
            name = p.get("Name", "")
            if not ELB_NAME.match(name):
                raise Violation("ValidationError", f"Target group name '{name}' can have a maximum of 32 characters, contain only alphanumeric characters or hyphens, and must not begin or end with a hyphen")
        if op in ("CreateTargetGroup", "ModifyTargetGroup"):
            interval = p.get("HealthCheckIntervalSeconds")
            timeout = p.get("HealthCheckTimeoutSeconds")
            if state is not None and op == "ModifyTargetGroup":
                current = state.target_group_health_check(p.get("TargetGroupArn", ""))
                if current:
                    interval = interval if interval is not None else current[0]
                    timeout = timeout if timeout is not None else current[1]
            if op == "CreateTargetGroup":
                interval = 30 if interval is None else interval
                timeout = 5 if timeout is None else timeout
            if interval is not None and timeout is not None and timeout >= interval:
                raise Violation("ValidationError", f"Health check interval must be greater than the timeout (interval {interval}, timeout {timeout})")
        if op == "ModifyTargetGroupAttributes":
            for a in p.get("Attributes", []):
                if a.get("Key") not in TARGET_GROUP_ATTRIBUTES:
                    raise Violation("ValidationError", f"Target group attribute key '{a.get('Key')}' is not recognized")
    elif call.service == "rds":
        for key, limit in (("DBInstanceIdentifier", 63), ("TargetDBInstanceIdentifier", 63),
                           ("FinalDBSnapshotIdentifier", 255), ("DBSnapshotIdentifier", 255)):
            value = p.get(key)
            if value is None or (key == "DBInstanceIdentifier" and not op.startswith(("Create", "Restore"))):
                continue
            if op.startswith(("Describe", "Delete")) and key == "DBSnapshotIdentifier":
                continue
            if not RDS_ID.fullmatch(value) or value.endswith("-") or len(value) > limit:
                raise Violation("InvalidParameterValue", f"The parameter {key} is not a valid identifier. Identifiers must begin with a letter; must contain only ASCII letters, digits, and hyphens; and must not end with a hyphen or contain two consecutive hyphens.")
        password = p.get("MasterUserPassword")
        if password is not None:
            if not 8 <= len(password) <= 128 or any(c in '/"@ ' or not 32 < ord(c) < 127 for c in password):
                raise Violation("InvalidParameterValue", "The parameter MasterUserPassword is not a valid password. Only printable ASCII characters besides '/', '@', '\"', ' ' may be used, 8 to 128 of them.")
        name = p.get("DBSubnetGroupName")
        if op == "CreateDBSubnetGroup" and name is not None and (name.lower() == "default" or not re.fullmatch(r"[A-Za-z0-9._ -]{1,255}", name)):
            raise Violation("InvalidParameterValue", f"The parameter DBSubnetGroupName is not a valid identifier: '{name}'")
    elif call.service == "ec2":
        if op == "CreateSecurityGroup":
            name = p.get("GroupName", "")
            if name.lower().startswith("sg-"):
                raise Violation("InvalidParameterValue", "Group names may not be in the format sg-*.")
            if len(name) > 255:
                raise Violation("InvalidParameterValue", "Group name is longer than 255 characters")
            desc = p.get("Description", "")
            if not re.fullmatch(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}", desc):
                raise Violation("InvalidParameterValue", "Invalid security group description: only a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{}!$* are allowed, at most 255")
    elif call.service == "s3":
        if op == "CreateBucket":
            bucket = call.labels.get("Bucket", "")
            _bucket_name(bucket)
            constraint = (p.get("CreateBucketConfiguration") or {}).get("LocationConstraint")
            if call.region == "us-east-1" and constraint == "us-east-1":
                raise Violation("InvalidLocationConstraint", "The specified location-constraint is not valid")
            if call.region != "us-east-1" and constraint != call.region:
                raise Violation("IllegalLocationConstraintException", f"The {constraint or 'unspecified'} location constraint is incompatible for the region specific endpoint this request was sent to.")
    elif call.service == "cloudwatch":
        from .cloudwatch import check_request

        check_request(call)


def _bucket_name(bucket: str) -> None:
    bad = (
        not BUCKET.match(bucket)
        or ".." in bucket
        or bucket.startswith(BUCKET_PREFIXES)
        or bucket.endswith(BUCKET_SUFFIXES)
    )
    try:
        ipaddress.IPv4Address(bucket)
        bad = True
    except ValueError:
        pass
    if bad:
        raise Violation("InvalidBucketName", f"The specified bucket is not valid: {bucket}")
