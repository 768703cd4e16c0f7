"""Where moto is changed in-process to behave like AWS (each patch names what it fixes).
`apply(cloud)` is called once, before the server starts."""

from __future__ import annotations

import json
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


def _rds(cloud: Any) -> None:
    """RDS instances are `creating` until their PostgreSQL serves (see rds.py), and
    `deleting` for a while after DeleteDBInstance, as on AWS."""
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
        db = original_delete(self, db_instance_identifier, *args, **kwargs)
        cloud.databases.deleted(db)
        delay = SETTINGS.delays["rds_delete"]
        if delay > 0:
            # Still listed, as `deleting`, until the delay has passed.
            self.databases[db_instance_identifier] = db
            db._lc_gone_at = time.time() + delay
        cloud.linger(db.vpc_security_group_ids, _db_subnets(db), delay + SETTINGS.delays["eni_linger"], f"RDS {db_instance_identifier}")
        return db

    backend_cls.create_db_instance = create_db_instance
    backend_cls.delete_db_instance = delete_db_instance


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
    version and goes to the subnet (AZ) with the fewest of the group's instances."""
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
