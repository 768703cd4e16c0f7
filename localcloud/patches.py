"""Where moto is changed in-process to behave like AWS (each patch names what it fixes).
`apply(cloud)` is called once, before the server starts."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from moto.autoscaling import models as asg_models
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import security_groups as ec2_sg
from moto.ec2.models import subnets as ec2_subnets
from moto.ec2.responses import general as ec2_general
from moto.ec2.utils import Base64EncodedString
from moto.elbv2 import models as elbv2_models
from moto.rds import models as rds_models
from moto.s3 import models as s3_models

from .settings import SETTINGS


log = logging.getLogger("localcloud.patches")


class DependencyViolation(EC2ClientError):
    def __init__(self, message: str):
        super().__init__("DependencyViolation", message)


def apply(cloud: Any) -> None:
    _rds(cloud)
    _load_balancers()
    _target_health(cloud)
    _bucket_policy()
    _lingering_interfaces(cloud)
    _auto_scaling()
    _console_output(cloud)
    _zone_offerings()
    _orderable_db_options()
    _duplicates_refused()
    _launch_template_not_found()
    _nat_gateway_tag_filters()
    _versioning_root()
    _vpc_endpoint_delete_repeated()


def _rds(cloud: Any) -> None:
    """RDS instances are `creating` until their PostgreSQL serves (see rds.py), and
    `deleting` for a while after DeleteDBInstance, as on AWS. A snapshot (manual or a
    final one) holds the database's data, and an instance restored from it starts with
    that data."""
    backend_cls = rds_models.RDSBackend
    original_create = backend_cls.create_db_instance
    original_delete = backend_cls.delete_db_instance

    def create_db_instance(self: Any, db_kwargs: dict) -> Any:
        db = original_create(self, db_kwargs)
        db.status = "creating"
        db._lc_created = time.time()
        cloud.databases.created(db)
        return db

    def delete_db_instance(self: Any, db_instance_identifier: str, *args: Any, **kwargs: Any) -> Any:
        listed = self.databases.get(db_instance_identifier)
        if listed is not None and getattr(listed, "_lc_gone_at", None):
            # Listed as `deleting` (below): a repeated delete (a lost answer) is refused as on AWS.
            from moto.rds.exceptions import RDSClientError

            raise RDSClientError("InvalidDBInstanceState", f"Instance {db_instance_identifier} is already being deleted.")
        db = original_delete(self, db_instance_identifier, *args, **kwargs)
        cloud.databases.deleted(db)
        delay = SETTINGS.delays["rds_delete"]
        if delay > 0:
            # Still listed, as `deleting`, until the delay has passed.
            self.databases[db_instance_identifier] = db
            db._lc_gone_at = time.time() + delay
        cloud.linger(db.vpc_security_group_ids, _db_subnets(db), delay + SETTINGS.delays["eni_linger"], f"RDS {db_instance_identifier}")
        return db

    original_snapshot = backend_cls.create_db_snapshot
    original_restore = backend_cls.restore_db_instance_from_db_snapshot
    original_delete_snapshot = backend_cls.delete_db_snapshot

    def create_db_snapshot(self: Any, db_instance_identifier: str, db_snapshot_identifier: str, *args: Any, **kwargs: Any) -> Any:
        # A final snapshot (DeleteDBInstance) comes here too, before the server stops.
        snapshot = original_snapshot(self, db_instance_identifier, db_snapshot_identifier, *args, **kwargs)
        cloud.databases.snapshot(db_instance_identifier, db_snapshot_identifier)
        return snapshot

    def restore_db_instance_from_db_snapshot(self: Any, from_snapshot_id: str, overrides: dict) -> Any:
        target = overrides["db_instance_identifier"]
        cloud.databases.restoring[target] = cloud.databases.snapshot_dump(from_snapshot_id.rsplit(":", 1)[-1])
        try:
            return original_restore(self, from_snapshot_id, overrides)
        finally:
            cloud.databases.restoring.pop(target, None)

    original_pitr = backend_cls.restore_db_instance_to_point_in_time

    def restore_db_instance_to_point_in_time(self: Any, source: str, target: str, overrides: dict) -> Any:
        from moto.rds.exceptions import RDSClientError

        when = overrides.get("restore_time")
        latest = cloud.databases.latest_restorable(source)
        if overrides.get("use_latest_restorable_time") or when is None:
            at = None
        else:
            at = when.timestamp() if hasattr(when, "timestamp") else _parse_time(str(when))
            if latest is None or at > latest:
                raise RDSClientError("InvalidRestoreFault", f"Restore time {when} is after the latest restorable time of {source}.")
        path = cloud.databases.point(source, at)
        if path is None:
            raise RDSClientError("InvalidRestoreFault", f"{source} has no backup to restore to {when or 'its latest restorable time'} from yet.")
        cloud.databases.restoring[target] = path
        try:
            return original_pitr(self, source, target, overrides)
        finally:
            cloud.databases.restoring.pop(target, None)

    latest_property = rds_models.DBInstance.latest_restorable_time

    def latest_restorable_time(self: Any) -> Any:
        import datetime

        t = cloud.databases.latest_restorable(self.db_instance_identifier)
        if t is None:
            return latest_property.fget(self) if hasattr(latest_property, "fget") else None
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).replace(tzinfo=None)

    rds_models.DBInstance.latest_restorable_time = property(latest_restorable_time)
    backend_cls.restore_db_instance_to_point_in_time = restore_db_instance_to_point_in_time

    def delete_db_snapshot(self: Any, db_snapshot_identifier: str) -> Any:
        snapshot = original_delete_snapshot(self, db_snapshot_identifier)
        cloud.databases.forget_snapshot(db_snapshot_identifier)
        return snapshot

    original_modify = backend_cls.modify_db_instance

    def modify_db_instance(self: Any, db_instance_identifier: str, db_kwargs: dict) -> Any:
        new_id = db_kwargs.get("new_db_instance_identifier")
        if new_id and new_id != db_instance_identifier:
            from moto.rds.exceptions import RDSClientError

            current = self.databases.get(db_instance_identifier)
            if current is not None and current.status != "available":
                raise RDSClientError("InvalidDBInstanceState", f"Instance {db_instance_identifier} is not available (it is {current.status}): it cannot be renamed.")
            if new_id in self.databases:
                raise RDSClientError("DBInstanceAlreadyExists", f"DB instance {new_id} already exists.")
        db = original_modify(self, db_instance_identifier, db_kwargs)
        if new_id and new_id != db_instance_identifier:
            cloud.databases.renamed(db_instance_identifier, db)
        password = db_kwargs.get("master_user_password")
        if password:
            cloud.databases.set_password(db.db_instance_identifier, password)
        return db

    backend_cls.create_db_instance = create_db_instance
    backend_cls.delete_db_instance = delete_db_instance
    backend_cls.modify_db_instance = modify_db_instance
    backend_cls.create_db_snapshot = create_db_snapshot
    backend_cls.restore_db_instance_from_db_snapshot = restore_db_instance_from_db_snapshot
    backend_cls.delete_db_snapshot = delete_db_snapshot


def _forwards_to(action: Any, group_arn: str) -> bool:
    data = getattr(action, "data", None) or {}
    if data.get("Type") != "forward":
        return False
    if data.get("TargetGroupArn") == group_arn:
        return True
    return any(g.get("TargetGroupArn") == group_arn for g in data.get("ForwardConfig", {}).get("TargetGroups", []))


def _in_use(group_arn: str) -> bool:
    """Whether a listener's default action or one of its rules forwards to the group."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.elbv2.models import elbv2_backends

    for region in elbv2_backends[DEFAULT_ACCOUNT_ID].values():
        for lb in region.load_balancers.values():
            for listener in lb.listeners.values():
                if any(_forwards_to(a, group_arn) for a in listener.default_actions):
                    return True
                for rule in listener.rules.values():
                    if any(_forwards_to(a, group_arn) for a in rule.actions):
                        return True
    return False


def _parse_time(text: str) -> float:
    import datetime

    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.timestamp()


def _db_subnets(db: Any) -> list[str]:
    group = getattr(db, "db_subnet_group", None)
    subnets = getattr(group, "subnets", []) if group else []
    return [getattr(s, "id", s) for s in subnets]


def _load_balancers() -> None:
    """An ALB is `provisioning` for a while before `active` (moto: active at once)."""
    cls = elbv2_models.FakeLoadBalancer
    original_init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._lc_created = time.time()

    def activate(self: Any) -> None:
        if self.state == "provisioning" and time.time() - self._lc_created >= SETTINGS.delays["alb_create"]:
            self.state = "active"

    cls.__init__ = __init__
    cls.activate = activate


def _target_health(cloud: Any) -> None:
    """Target health from real HTTP probes (health.py) instead of `healthy` at once;
    deregistered targets are `draining` for the deregistration delay."""
    cls = elbv2_models.FakeTargetGroup
    original = cls.health_for

    def health_for(self: Any, target: dict, ec2_backend: Any) -> Any:
        if target["Id"] in self.targets and not _in_use(self.arn):
            # No listener action or rule forwards to the group: ELB does not health-check
            # its targets, and says so.
            port = self.targets.get(target["Id"], {}).get("Port", self.port)
            return elbv2_models.FakeHealthStatus(
                target["Id"], port, self.health_check_port, "unused", "Target.NotInUse",
                "Target group is not configured to receive traffic from the load balancer",
            )
        state = cloud.health.state_of(self.arn, target["Id"])
        if state is None and target["Id"] in self.targets:
            # Registered since the prober last looked: not probed yet.
            state = ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
        if state is None:
            return original(self, target, ec2_backend)
        status, reason, description = state
        port = self.targets.get(target["Id"], {}).get("Port", self.port)
        return elbv2_models.FakeHealthStatus(target["Id"], port, self.health_check_port, status, reason, description)

    backend_cls = elbv2_models.ELBv2Backend
    original_describe = backend_cls.describe_target_health

    def describe_target_health(self: Any, target_group_arn: str, targets: list) -> Any:
        if not targets:
            group = self.target_groups.get(target_group_arn)
            if group is not None:
                listed = list(group.targets.values())
                listed += [{"Id": i, "Port": p} for i, p in cloud.health.draining(target_group_arn)]
                targets = listed
        return original_describe(self, target_group_arn, targets)

    original_deregister = cls.deregister

    def deregister(self: Any, targets: list) -> None:
        # Deregistering a target that is not registered (any more) is a no-op on AWS: a
        # repeated call after a lost answer succeeds. moto raised InvalidTarget.
        targets = [t for t in targets if t["Id"] in self.targets]
        original_deregister(self, targets)
        delay = float(self.attributes.get("deregistration_delay.timeout_seconds", 300))
        for t in targets:
            cloud.health.deregistered(self.arn, t["Id"], delay)

    cls.health_for = health_for
    cls.deregister = deregister
    backend_cls.describe_target_health = describe_target_health


def _bucket_policy() -> None:
    """moto applies a bucket policy's Deny to every request, whatever its Condition, so a
    TLS-only policy (Deny when aws:SecureTransport is false) blocks all object calls. The
    local cloud's endpoint stands in for S3's HTTPS endpoint: such statements do not apply."""
    cls = s3_models.FakeBucket
    original = cls.get_permission

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return original(self, action, resource)
        policy = json.loads(self.policy)
        statements = policy.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        kept = [s for s in statements if not _tls_only(s)]
        if len(kept) == len(statements):
            return original(self, action, resource)
        saved = self.policy
        try:
            self.policy = json.dumps({**policy, "Statement": kept}).encode()
            if not kept:
                from moto.iam.access_control import PermissionResult

                return PermissionResult.NEUTRAL
            return original(self, action, resource)
        finally:
            self.policy = saved

    cls.get_permission = get_permission


def _vpc_endpoint_delete_repeated() -> None:
    """A second DeleteVpcEndpoints of a deleted gateway endpoint (a lost answer's retry)
    made moto delete its routes again and answer InvalidRoute.NotFound; AWS answers
    success (the endpoint is gone)."""
    from moto.ec2.models import vpcs

    cls = vpcs.VPCBackend
    original = cls.delete_vpc_endpoints

    def delete_vpc_endpoints(self: Any, vpce_ids: list | None = None) -> Any:
        live = [i for i in (vpce_ids or []) if getattr(self.vpc_end_points.get(i), "state", None) != "deleted"]
        return original(self, live)

    cls.delete_vpc_endpoints = delete_vpc_endpoints


def _versioning_root() -> None:
    """moto serializes GetBucketVersioning from botocore's model, which names no XML root,
    as `<GetBucketVersioningResponse>`; S3 answers `<VersioningConfiguration>` (the
    Smithy model's name, which the Rust SDK checks)."""
    from moto.s3 import responses as s3_responses

    cls = s3_responses.S3Response
    original = cls.get_bucket_versioning

    def get_bucket_versioning(self: Any) -> Any:
        status, headers, body = original(self)
        if isinstance(body, bytes):
            body = body.replace(b"GetBucketVersioningResponse", b"VersioningConfiguration")
        elif isinstance(body, str):
            body = body.replace("GetBucketVersioningResponse", "VersioningConfiguration")
        return status, headers, body

    cls.get_bucket_versioning = get_bucket_versioning


def _tls_only(statement: dict) -> bool:
    cond = statement.get("Condition", {})
    return (
        statement.get("Effect") == "Deny"
        and list(cond.keys()) == ["Bool"]
        and {k.lower(): str(v).lower() for k, v in cond["Bool"].items()} == {"aws:securetransport": "false"}
    )


def _lingering_interfaces(cloud: Any) -> None:
    """AWS refuses to delete a security group or subnet while a network interface uses it:
    an instance's, or a deleted ALB's or RDS's interfaces, which linger for minutes."""
    sg_cls = ec2_sg.SecurityGroupBackend
    original_sg = sg_cls.delete_security_group
    subnet_cls = ec2_subnets.SubnetBackend
    original_subnet = subnet_cls.delete_subnet

    def delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> Any:
        if group_id:
            holder = cloud.interface_using(group_id, kind="group")
            if holder:
                raise DependencyViolation(f"resource {group_id} has a dependent object ({holder})")
        return original_sg(self, name=name, group_id=group_id)

    def delete_subnet(self: Any, subnet_id: str) -> Any:
        holder = cloud.interface_using(subnet_id, kind="subnet")
        if holder:
            raise DependencyViolation(f"The subnet '{subnet_id}' has dependencies and cannot be deleted ({holder}).")
        return original_subnet(self, subnet_id)

    sg_cls.delete_security_group = delete_security_group
    subnet_cls.delete_subnet = delete_subnet

    elb_cls = elbv2_models.ELBv2Backend
    original_delete_lb = elb_cls.delete_load_balancer

    def delete_load_balancer(self: Any, arn: str) -> Any:
        lb = self.load_balancers.get(arn)
        result = original_delete_lb(self, arn)
        if lb is not None:
            subnets = [getattr(s, "id", s) for s in lb.subnets]
            cloud.linger(list(lb.security_groups or []), subnets, SETTINGS.delays["eni_linger"], f"ELB {lb.name}")
            cloud.balancers.deleted(arn)
        return result

    elb_cls.delete_load_balancer = delete_load_balancer


def _auto_scaling() -> None:
    """moto starts every group instance in the first subnet, and from the template's
    default version whatever version the group names. Here each launch uses the group's
    version and goes to the subnet (AZ) with the fewest of the group's instances, among
    the zones that offer the template's instance type (a launch needs one)."""
    cls = asg_models.FakeAutoScalingGroup

    def replace_autoscaling_group_instances(self: Any, count_needed: int, propagated_tags: dict) -> None:
        propagated_tags[asg_models.ASG_NAME_TAG] = self.name
        propagated_tags.update(self.instance_tags)
        subnets = [s for s in (self.vpc_zone_identifier or "").split(",") if s]
        launch_template = None
        if self.ec2_launch_template:
            launch_template = {
                "LaunchTemplateId": self.ec2_launch_template.id,
                "Version": str(self.launch_template_version),
            }
        ec2 = self.autoscaling_backend.ec2_backend
        instance_type = launch_instance_type(self) or self.instance_type
        offering = [s for s in subnets if offered(subnet_zone(ec2, s), instance_type)]
        if subnets and not offering:
            log.warning("auto scaling %s: no subnet's zone offers %s; launch failed", self.name, instance_type)
            return
        subnets = offering or subnets
        for _ in range(count_needed):
            subnet_id = None
            if subnets:
                counts = {s: 0 for s in subnets}
                for state in self.instance_states:
                    sid = getattr(state.instance, "subnet_id", None)
                    if sid in counts and state.instance.state in ("pending", "running"):
                        counts[sid] += 1
                subnet_id = min(subnets, key=lambda s: (counts[s], subnets.index(s)))
            reservation = self.autoscaling_backend.ec2_backend.run_instances(
                self.image_id,
                1,
                self.user_data,
                self.security_groups,
                instance_type=self.instance_type,
                tags={"instance": dict(propagated_tags)},
                launch_config=self.launch_config,
                launch_template=launch_template,
                is_instance_type_default=False,
                subnet_id=subnet_id,
            )
            for instance in reservation.instances:
                instance.autoscaling_group = self
                instance._lc_launch_template_version = str(self.launch_template_version)
                self.instance_states.append(
                    asg_models.InstanceState(instance, protected_from_scale_in=self.new_instances_protected_from_scale_in)
                )

    cls.replace_autoscaling_group_instances = replace_autoscaling_group_instances
    cls.launch_in = launch_in

    # A version made by CreateLaunchTemplateVersion keeps its UserData as a plain string,
    # which moto's own assertion then rejects (HTTP 500 on every launch from it).
    from moto.core.types import Base64EncodedString as Encoded
    from moto.ec2.models import launch_templates

    def user_data(self: Any) -> Any:
        value = self.data.get("UserData")
        if isinstance(value, str):
            value = Encoded(value)
            self.data["UserData"] = value
        return value

    launch_templates.LaunchTemplateVersion.user_data = property(user_data)

    # TerminateInstanceInAutoScalingGroup of an instance no longer in any group (already
    # replaced or terminated) is a ValidationError on AWS; moto crashes with HTTP 500.
    from moto.autoscaling.exceptions import ValidationError

    backend_cls = asg_models.AutoScalingBackend
    original_terminate = backend_cls.terminate_instance

    def terminate_instance(self: Any, instance_id: str, should_decrement: bool) -> Any:
        if not any(st.instance.id == instance_id for g in self.autoscaling_groups.values() for st in g.instance_states):
            raise ValidationError(f"Instance Id not found - No managed instance found for instance ID: {instance_id}")
        return original_terminate(self, instance_id, should_decrement)

    backend_cls.terminate_instance = terminate_instance

    # An instance Auto Scaling is retiring (deregistered, draining) is not registered again.
    def update_attached_target_groups(self: Any, group_name: str) -> None:
        group = self.autoscaling_groups[group_name]
        if not group.target_group_arns:
            return
        ids = {st.instance.id for st in group.instance_states if st.lifecycle_state != "Terminating"}
        for tg in self.elbv2_backend.describe_target_groups(target_group_arns=group.target_group_arns, load_balancer_arn=None, names=None):
            self.elbv2_backend.register_targets(tg.arn, [{"Id": i, "Port": tg.port} for i in ids])

    backend_cls.update_attached_target_groups = update_attached_target_groups


def _console_output(cloud: Any) -> None:
    """GetConsoleOutput returns the instance's real boot output and its service's last lines."""

    def get_console_output(self: Any) -> Any:
        instance_id = self._get_param("InstanceId")
        instance = self.ec2_backend.get_instance(instance_id)
        result = {
            "InstanceId": instance.id,
            "Timestamp": utcnow(),
            "Output": Base64EncodedString.from_raw_string(cloud.console_output(instance.id)),
        }
        return ec2_general.ActionResult(result)

    ec2_general.General.get_console_output = get_console_output


# ---- zones and what they offer ------------------------------------------------------------


def offered(zone: str | None, instance_type: str | None) -> bool:
    """Whether `zone` offers `instance_type`: moto's offerings data, less the families the
    `aws.unoffered_families` knob takes out of the zone ending in `aws.unoffered_zone`."""
    if not zone or not instance_type:
        return True
    letter = SETTINGS.aws.get("unoffered_zone") or ""
    families = [f.strip() for f in str(SETTINGS.aws.get("unoffered_families") or "").split(",") if f.strip()]
    if letter and zone.endswith(letter) and instance_type.split(".")[0] in families:
        return False
    from moto.ec2.models.instance_types import INSTANCE_TYPE_OFFERINGS

    region = zone[:-1]
    listed = INSTANCE_TYPE_OFFERINGS["availability-zone"].get(region)
    if not listed:
        return True
    return any(o["Location"] == zone and o["InstanceType"] == instance_type for o in listed)


def subnet_zone(ec2: Any, subnet_id: str) -> str | None:
    try:
        return ec2.get_subnet(subnet_id).availability_zone
    except Exception:
        return None


def launch_instance_type(group: Any) -> str | None:
    lt = getattr(group, "ec2_launch_template", None)
    if lt is None:
        return None
    try:
        return lt.get_version(group.launch_template_version).data.get("InstanceType")
    except Exception:
        return None


def launch_in(self: Any, subnet_id: str) -> Any:
    """Launch one instance of the group in `subnet_id` (AZRebalance's launch)."""
    saved = self.vpc_zone_identifier
    try:
        self.vpc_zone_identifier = subnet_id
        self.replace_autoscaling_group_instances(1, self.get_propagated_tags())
    finally:
        self.vpc_zone_identifier = saved


def _zone_offerings() -> None:
    """Not every zone offers every instance type: DescribeInstanceTypeOfferings says so, and
    RunInstances into such a zone is refused (`Unsupported`), as on AWS."""
    from moto.ec2.models import instance_types, instances

    cls = instance_types.InstanceTypeOfferingBackend
    original = cls.describe_instance_type_offerings

    def describe_instance_type_offerings(self: Any, location_type: str | None = None, filters: Any = None) -> Any:
        found = original(self, location_type, filters)
        if (location_type or "region") != "availability-zone":
            return found
        return [o for o in found if offered(o.get("Location"), o.get("InstanceType"))]

    cls.describe_instance_type_offerings = describe_instance_type_offerings

    backend = instances.InstanceBackend
    original_run = backend.run_instances

    def run_instances(self: Any, image_id: str, count: int, user_data: Any, security_group_names: Any, **kwargs: Any) -> Any:
        subnet = kwargs.get("subnet_id")
        instance_type = kwargs.get("instance_type")
        template = kwargs.get("launch_template")
        if template:
            try:
                lt = self.get_launch_template(template.get("LaunchTemplateId")) if template.get("LaunchTemplateId") else None
                if lt is not None:
                    version = template.get("Version", "$Default")
                    data = (lt.default_version() if version == "$Default" else lt.latest_version() if version == "$Latest" else lt.get_version(int(version))).data
                    instance_type = data.get("InstanceType") or instance_type
            except Exception:
                pass
        zone = subnet_zone(self, subnet) if subnet else kwargs.get("placement")
        if zone and instance_type and not offered(zone, instance_type):
            others = [z.name for z in self.describe_availability_zones() if z.name != zone and offered(z.name, instance_type)]
            raise EC2ClientError(
                "Unsupported",
                f"Your requested instance type ({instance_type}) is not supported in your requested Availability Zone ({zone}). "
                f"Please retry your request by not specifying an Availability Zone or choosing {', '.join(others)}.",
            )
        return original_run(self, image_id, count, user_data, security_group_names, **kwargs)

    backend.run_instances = run_instances


def _orderable_db_options() -> None:
    """DescribeOrderableDBInstanceOptions for PostgreSQL (moto has it for Aurora and Neptune
    only): every class in every zone of the region, filtered by class and version."""
    backend_cls = rds_models.RDSBackend
    original = backend_cls.describe_orderable_db_instance_options
    classes = ["db.t4g.micro", "db.t4g.small", "db.t4g.medium", "db.t3.micro", "db.t3.small", "db.m7g.large", "db.r7g.large"]

    def describe_orderable_db_instance_options(self: Any, engine: str, engine_version: str) -> Any:
        if engine != "postgres":
            return original(self, engine, engine_version)
        from moto.ec2.models import ec2_backends

        zones = [z.name for z in ec2_backends[self.account_id][self.region_name].describe_availability_zones()]
        versions = [v for v in ("15.8", "16.4", "16.6", "17.2") if not engine_version or v.startswith(engine_version)]
        return [
            {
                "Engine": "postgres",
                "EngineVersion": v,
                "DBInstanceClass": c,
                "LicenseModel": "postgresql-license",
                "AvailabilityZones": [{"Name": z} for z in zones],
                "MultiAZCapable": True,
                "StorageType": "gp3",
                "SupportsStorageEncryption": True,
            }
            for v in versions
            for c in classes
        ]

    backend_cls.describe_orderable_db_instance_options = describe_orderable_db_instance_options

    from moto.rds import responses as rds_responses

    original_response = rds_responses.RDSResponse.describe_orderable_db_instance_options

    def response(self: Any) -> Any:
        result = original_response(self)
        wanted = self.params.get("DBInstanceClass")
        if wanted:
            result.result["OrderableDBInstanceOptions"] = [
                o for o in result.result["OrderableDBInstanceOptions"] if o.get("DBInstanceClass") == wanted
            ]
        return result

    rds_responses.RDSResponse.describe_orderable_db_instance_options = response


def _launch_template_not_found() -> None:
    """DeleteLaunchTemplate of an id that does not exist: AWS answers
    `InvalidLaunchTemplateId.NotFound`, moto the name's code
    (`InvalidLaunchTemplateName.NotFoundException`)."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models import launch_templates

    cls = launch_templates.LaunchTemplateBackend
    original = cls.delete_launch_template

    def delete_launch_template(self: Any, name: str, tid: str | None) -> Any:
        if not name and tid and tid not in self.launch_templates:
            raise EC2ClientError("InvalidLaunchTemplateId.NotFound", f"The specified launch template, with template ID {tid}, does not exist.")
        return original(self, name, tid)

    cls.delete_launch_template = delete_launch_template


def _duplicates_refused() -> None:
    """Creates that AWS refuses (or answers idempotently) when the name exists, where moto
    overwrites: a second CreateAutoScalingGroup replaced the group and launched more
    instances, a second CreateDBSubnetGroup replaced the group, and a second CreateBucket
    by its owner said BucketAlreadyExists. Also RemoveRoleFromInstanceProfile of a role
    not in the profile: NoSuchEntity on AWS, HTTP 500 in moto."""
    from moto.autoscaling.exceptions import AutoscalingClientError
    from moto.iam import models as iam_models
    from moto.iam.exceptions import NotFoundException
    from moto.rds.exceptions import RDSClientError
    from moto.s3.exceptions import BucketAlreadyOwnedByYou

    class AlreadyExists(AutoscalingClientError):
        code = "AlreadyExists"

    backend = asg_models.AutoScalingBackend
    original_asg = backend.create_auto_scaling_group

    def create_auto_scaling_group(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        if name in self.autoscaling_groups:
            raise AlreadyExists(f"AutoScalingGroup by this name already exists - A group with the name {name} already exists")
        return original_asg(self, name, *args, **kwargs)

    backend.create_auto_scaling_group = create_auto_scaling_group

    rds_backend = rds_models.RDSBackend
    original_subnet_group = rds_backend.create_subnet_group

    def create_subnet_group(self: Any, subnet_name: str, *args: Any, **kwargs: Any) -> Any:
        if subnet_name in self.subnet_groups:
            raise RDSClientError("DBSubnetGroupAlreadyExists", f"The DB subnet group '{subnet_name}' already exists.")
        return original_subnet_group(self, subnet_name, *args, **kwargs)

    rds_backend.create_subnet_group = create_subnet_group

    s3_backend = s3_models.S3Backend
    original_bucket = s3_backend.create_bucket

    def create_bucket(self: Any, bucket_name: str, region_name: str, *args: Any, **kwargs: Any) -> Any:
        existing = self.buckets.get(bucket_name)
        if existing is not None:
            if region_name == "us-east-1":
                return existing  # S3's legacy answer there: 200, the bucket you own
            raise BucketAlreadyOwnedByYou(bucket_name)
        return original_bucket(self, bucket_name, region_name, *args, **kwargs)

    s3_backend.create_bucket = create_bucket

    # CreateLoadBalancer with a name in use: the same load balancer again when the settings
    # match (AWS makes the call idempotent), DuplicateLoadBalancerName otherwise. moto
    # checks the ARN, whose id is random, and made a second one.
    elb_backend = elbv2_models.ELBv2Backend
    original_lb = elb_backend.create_load_balancer

    def create_load_balancer(self: Any, name: str, security_groups: Any, subnet_ids: Any, *args: Any, **kwargs: Any) -> Any:
        for lb in self.load_balancers.values():
            if lb.name == name:
                same = sorted(lb.security_groups or []) == sorted(security_groups or []) and sorted(
                    getattr(s, "id", s) for s in lb.subnets
                ) == sorted(subnet_ids or [])
                if same:
                    return lb
                from moto.elbv2.exceptions import DuplicateLoadBalancerName

                raise DuplicateLoadBalancerName()
        return original_lb(self, name, security_groups, subnet_ids, *args, **kwargs)

    elb_backend.create_load_balancer = create_load_balancer

    iam_backend = iam_models.IAMBackend
    original_remove = iam_backend.remove_role_from_instance_profile

    def remove_role_from_instance_profile(self: Any, profile_name: str, role_name: str) -> None:
        profile = self.get_instance_profile(profile_name)
        if not any(r.name == role_name for r in profile.roles):
            raise NotFoundException(f"The role {role_name} is not in instance profile {profile_name}.")
        return original_remove(self, profile_name, role_name)

    iam_backend.remove_role_from_instance_profile = remove_role_from_instance_profile


def _nat_gateway_tag_filters() -> None:
    """moto's DescribeNatGateways ignores `tag:` filters and lists every gateway of the
    region, so one stack's `down` deleted another's."""
    from moto.ec2.models import nat_gateways

    cls = nat_gateways.NatGatewayBackend
    original = cls.describe_nat_gateways

    def describe_nat_gateways(self: Any, filters: Any, nat_gateway_ids: Any) -> Any:
        found = original(self, filters, nat_gateway_ids)
        for key, values in (filters or {}).items():
            if key.startswith("tag:"):
                name = key[4:]
                found = [g for g in found if _tags_of(g).get(name) in values]
            elif key == "tag-key":
                found = [g for g in found if any(k in values for k in _tags_of(g))]
        return found

    cls.describe_nat_gateways = describe_nat_gateways


def _tags_of(resource: Any) -> dict:
    backend = getattr(resource, "ec2_backend", None)
    if backend is None:
        return {}
    return {t["key"]: t["value"] for t in backend.describe_tags(filters={"resource-id": [resource.id]})}
