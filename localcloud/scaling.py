"""Target tracking scaling on ALBRequestCountPerTarget, as Auto Scaling evaluates it from
the load balancer's request counts (moto stores a policy and never acts on it).

What AWS does, and what this does:
- The metric. CloudWatch's `RequestCountPerTarget` of a target group is the group's
  `RequestCount` (requests for which the load balancer chose one of its targets: a 503
  answered because the group has no target at all is not counted, as ELB documents for
  RequestCount) divided by the group's healthy targets (all registered ones when none is
  healthy). The policy's `ResourceLabel` (`app/<lb>/<id>/targetgroup/<tg>/<id>`) names the
  load balancer and the target group. Here `balancer.py` counts each request it forwards
  to a target of a group (`count`), and every `aws.scaling_period` seconds (AWS: the
  1-minute metric) the count of that period, scaled to a minute, is divided by the healthy
  targets. ELB publishes no datapoint for a minute without requests: then the alarms have
  no data (INSUFFICIENT_DATA) and the policy does nothing, so a group with no traffic at
  all stays as it is (keep a trickle of requests to see it scale in).
- The alarms. Target tracking makes two alarms: AlarmHigh (metric > TargetValue for 3 of
  3 one-minute datapoints) and AlarmLow (metric < 90% of TargetValue for 15 of 15).
  Here `aws.scaling_out_periods` and `aws.scaling_in_periods` consecutive periods.
- The new capacity: ceil(capacity * metric / TargetValue), with capacity the healthy
  targets the metric divides by, so ceil(requests per minute / TargetValue), clamped to
  [MinSize, MaxSize]. It scales out only above the current desired capacity (instances
  still warming up are part of it: no second launch for the same load) and in only below.
- Scale-in is conservative: never while an instance of the group is within its warmup
  (`EstimatedInstanceWarmup`, else the group's default instance warmup, else its default
  cooldown, as Auto Scaling falls back), never with `DisableScaleIn`, never below MinSize.
  Instances go by the default termination policy (the zone with the most instances, then
  the oldest launch template version, then the instance closest to its next billing hour),
  each deregistered and drained for the target groups' deregistration delay before it is
  terminated (`cloud._drain_then_terminate`). Terminating instances are not capacity.
- Suspended processes: `AlarmNotification` -> the policy does not act; `Launch` -> no scale
  out; `Terminate` -> no scale in (AWS: "does not scale out/in for alarms ... while the
  process is suspended").
- Each action is a scaling activity (DescribeScalingActivities; moto keeps none), with
  AWS's description and cause.
Not evaluated: ASGAverageCPUUtilization and the other predefined or customized metrics
(stored and described, never acted on)."""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .settings import LOCK, SETTINGS

log = logging.getLogger("localcloud.scaling")

# AWS's AlarmLow threshold: 90% of the target value.
SCALE_IN_FRACTION = 0.9


@dataclass
class PolicyState:
    """What the two alarms of one policy have seen."""

    period_start: float
    counted: int  # the target group's request counter at period_start
    high: int = 0
    low: int = 0
    alarm_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    last_metric: float | None = None


@dataclass
class Retiring:
    """A scale-in activity waiting for its instance's termination."""

    activity: Any
    instance: Any


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Scaling:
    def __init__(self, cloud: Any):
        self.cloud = cloud
        # Target group ARN -> requests forwarded to one of its targets, since start. Only
        # ever grows; each policy remembers where its period began. Incremented by the
        # load balancers (the event loop) under a small lock of its own.
        self.requests: dict[str, int] = {}
        self._count_lock = threading.Lock()
        self.policies: dict[str, PolicyState] = {}
        self.retiring: list[Retiring] = []
        self._warned: set[str] = set()

    # ---- the request path -----------------------------------------------------------

    def count(self, target_group_arn: str) -> None:
        """One request routed to a target of the group (balancer.py)."""
        with self._count_lock:
            self.requests[target_group_arn] = self.requests.get(target_group_arn, 0) + 1

    def requests_of(self, target_group_arn: str) -> int:
        with self._count_lock:
            return self.requests.get(target_group_arn, 0)

    # ---- the reconcile loop (under moto's LOCK) -------------------------------------

    def evaluate(self, backend: Any, group: Any) -> None:
        """Called for every group on every reconcile pass, after `_auto_scale`."""
        with LOCK:
            now = time.time()
            self._record_launches(backend, group)
            self._finish_retired(backend)
            for policy in list(backend.policies.values()):
                if policy.auto_scaling_group_name != group.name or policy.policy_type != "TargetTrackingScaling":
                    continue
                try:
                    self._evaluate(backend, group, policy, now)
                except Exception:
                    # A bug of ours must not stop the reconcile pass (health, launches).
                    log.exception("scaling policy %s of %s: evaluation failed", policy.name, group.name)

    def _evaluate(self, backend: Any, group: Any, policy: Any, now: float) -> None:
        config = policy.target_tracking_configuration
        spec = getattr(config, "PredefinedMetricSpecification", None) or {}
        if spec.get("PredefinedMetricType") != "ALBRequestCountPerTarget":
            return  # stored, not evaluated (README: not emulated)
        target_group = self._target_group(backend, str(spec.get("ResourceLabel") or ""), policy)
        if target_group is None:
            return
        key = f"{group.name}/{policy.name}"
        counter = self.requests_of(target_group.arn)
        state = self.policies.get(key)
        if state is None:
            self.policies[key] = PolicyState(now, counter, alarm_id=getattr(policy, "_lc_alarm_id", str(uuid.uuid4())))
            return
        period = max(0.1, float(SETTINGS.aws["scaling_period"]))
        if now - state.period_start < period:
            return
        elapsed = now - state.period_start
        requests = counter - state.counted
        state.period_start, state.counted = now, counter
        if requests <= 0:
            # ELB publishes no datapoint for a period without requests: INSUFFICIENT_DATA.
            state.high = state.low = 0
            state.last_metric = None
            return
        healthy = self.cloud.health.healthy(target_group.arn)
        registered = len(target_group.targets)
        targets = len(healthy) or registered or 1
        per_minute = requests * 60.0 / elapsed
        metric = per_minute / targets
        state.last_metric = metric
        target = float(getattr(config, "TargetValue", 0) or 0)
        if target <= 0:
            return
        if metric > target:
            state.high, state.low = state.high + 1, 0
        elif metric < SCALE_IN_FRACTION * target:
            state.high, state.low = 0, state.low + 1
        else:
            state.high = state.low = 0
        wanted = max(int(group.min_size or 0), min(int(group.max_size or 0), math.ceil(targets * metric / target)))
        desired = int(group.desired_capacity or 0)
        suspended = {p["ProcessName"] for p in group.suspended_processes}
        if "AlarmNotification" in suspended:
            return
        if state.high >= int(SETTINGS.aws["scaling_out_periods"]) and wanted > desired:
            if "Launch" in suspended:
                return
            self._scale_out(backend, group, policy, state, desired, wanted, metric)
            state.high = 0
        elif state.low >= int(SETTINGS.aws["scaling_in_periods"]) and wanted < desired:
            if "Terminate" in suspended or _disable_scale_in(config):
                return
            warmup = self._warmup(group, policy)
            in_service = _in_service(group)
            if any(now - float(getattr(st.instance, "_lc_seen", now)) < warmup for st in in_service):
                return  # instances warming up: no scale-in until they are done
            self._scale_in(backend, group, policy, state, desired, wanted, metric, in_service)
            state.low = 0

    # ---- actions --------------------------------------------------------------------

    def _cause(self, group: Any, policy: Any, state: PolicyState, which: str, before: int, after: int) -> str:
        return (
            f"At {_stamp(time.time())} a monitor alarm TargetTracking-{group.name}-Alarm{which}-{state.alarm_id} "
            f"in state ALARM triggered policy {policy.name} changing the desired capacity from {before} to {after}."
        )

    def _scale_out(self, backend: Any, group: Any, policy: Any, state: PolicyState, before: int, after: int, metric: float) -> None:
        group.desired_capacity = after
        cause = self._cause(group, policy, state, "High", before, after)
        cause += f" At {_stamp(time.time())} an instance was started in response to a difference between desired and actual capacity, increasing the capacity from {before} to {after}."
        known = {st.instance.id for st in group.instance_states}
        group._lc_scaling_launch = (known, cause, after - before)
        log.info("auto scaling %s: %s at %.1f requests/target/minute: desired %d -> %d", group.name, policy.name, metric, before, after)

    def _record_launches(self, backend: Any, group: Any) -> None:
        """The instances `_auto_scale` launched for a scale-out: one activity each."""
        from moto.autoscaling.models import Activity

        pending = getattr(group, "_lc_scaling_launch", None)
        if pending is None:
            return
        known, cause, count = pending
        fresh = [st.instance for st in group.instance_states if st.instance.id not in known]
        for instance in fresh[:count]:
            activity = Activity(f"Launching a new EC2 instance: {instance.id}", cause, group, status_code="Successful")
            activity.progress = 100
            _activities(backend).append(activity)
        if len(fresh) >= count:
            group._lc_scaling_launch = None
        else:
            group._lc_scaling_launch = (known | {i.id for i in fresh}, cause, count - len(fresh))

    def _scale_in(self, backend: Any, group: Any, policy: Any, state: PolicyState, before: int, after: int, metric: float, in_service: list) -> None:
        from moto.autoscaling.models import Activity

        victims = termination_order(backend.ec2_backend, group, in_service)[: max(0, len(in_service) - after)]
        group.desired_capacity = after
        log.info("auto scaling %s: %s at %.1f requests/target/minute: desired %d -> %d, retiring %s",
                 group.name, policy.name, metric, before, after, ", ".join(v.instance.id for v in victims))
        cause = self._cause(group, policy, state, "Low", before, after)
        for victim in victims:
            text = (
                f"{cause} At {_stamp(time.time())} an instance was taken out of service in response to a difference "
                f"between desired and actual capacity, shrinking the capacity from {before} to {after}. "
                f"At {_stamp(time.time())} instance {victim.instance.id} was selected for termination."
            )
            activity = Activity(f"Terminating EC2 instance: {victim.instance.id}", text, group, status_code="InProgress")
            activity.progress = 50
            _activities(backend).append(activity)
            self.retiring.append(Retiring(activity, victim.instance))
            self.cloud._drain_then_terminate(backend, group, victim)

    def _finish_retired(self, backend: Any) -> None:
        from moto.core.utils import utcnow

        for r in list(self.retiring):
            if r.instance.state in ("terminated", "shutting-down"):
                r.activity.status_code, r.activity.progress, r.activity.end_time = "Successful", 100, utcnow()
                self.retiring.remove(r)

    def status(self) -> dict:
        """For /_localcloud/status: requests counted per target group, each policy's alarms."""
        with self._count_lock:
            requests = dict(self.requests)
        return {
            "target_group_requests": requests,
            "policies": {k: {"high": s.high, "low": s.low, "last_metric": s.last_metric} for k, s in list(self.policies.items())},
        }

    # ---- lookups --------------------------------------------------------------------

    def _target_group(self, backend: Any, label: str, policy: Any) -> Any:
        """The target group a ResourceLabel names, if the load balancer and the group are
        the account's (and the group is the load balancer's)."""
        parts = label.split("/")
        if len(parts) != 6 or parts[0] != "app" or parts[3] != "targetgroup":
            self._warn(policy, f"ResourceLabel {label!r} is not app/<lb>/<id>/targetgroup/<tg>/<id>")
            return None
        elb = backend.elbv2_backend
        lb_suffix = f":loadbalancer/{'/'.join(parts[0:3])}"
        tg_suffix = f":{'/'.join(parts[3:6])}"
        lb = next((b for b in elb.load_balancers.values() if b.arn.endswith(lb_suffix)), None)
        tg = next((g for g in elb.target_groups.values() if g.arn.endswith(tg_suffix)), None)
        if lb is None or tg is None or lb.arn not in (tg.load_balancer_arns or []):
            self._warn(policy, f"ResourceLabel {label!r} names no load balancer and target group of the account")
            return None
        return tg

    def _warn(self, policy: Any, text: str) -> None:
        if policy.arn + text not in self._warned:
            self._warned.add(policy.arn + text)
            log.warning("scaling policy %s: %s: not evaluated", policy.name, text)

    @staticmethod
    def _warmup(group: Any, policy: Any) -> float:
        for value in (policy.estimated_instance_warmup, getattr(group, "default_instance_warmup", None), group.default_cooldown):
            if value not in (None, ""):
                return float(value)
        return 300.0


def _disable_scale_in(config: Any) -> bool:
    value = getattr(config, "DisableScaleIn", False)
    return value is True or str(value).lower() == "true"


def _in_service(group: Any) -> list:
    """The group's capacity: instances pending or running that are not being retired."""
    return [st for st in group.instance_states if st.lifecycle_state != "Terminating" and st.instance.state in ("pending", "running")]


def termination_order(ec2: Any, group: Any, states: list) -> list:
    """Auto Scaling's default termination policy, one instance at a time: from the zone
    with the most instances, the one of the oldest launch template version, then the one
    closest to its next billing hour, then the oldest. Protected instances are skipped."""
    from .patches import subnet_zone

    left = [st for st in states if not getattr(st, "protected_from_scale_in", False)]
    order = []
    now = time.time()
    while left:
        zones: dict[str, list] = {}
        for st in left:
            zones.setdefault(subnet_zone(ec2, st.instance.subnet_id) or "", []).append(st)
        biggest = max(zones.values(), key=len)

        def rank(st: Any) -> tuple:
            version = launch_version(group, getattr(st.instance, "_lc_launch_template_version", None))
            seen = float(getattr(st.instance, "_lc_seen", now) or now)
            to_hour = 3600 - ((now - seen) % 3600)
            return (version, to_hour, seen)

        victim = min(biggest, key=rank)
        order.append(victim)
        left.remove(victim)
    return order


def launch_version(group: Any, version: Any) -> int:
    """The launch template version an instance was launched from, as a number (`$Latest`
    and `$Default` as the template has them now)."""
    text = str(version or "")
    if text.isdigit():
        return int(text)
    lt = getattr(group, "ec2_launch_template", None)
    try:
        found = lt.latest_version() if text == "$Latest" else lt.default_version()
        return int(found.number)
    except Exception:
        return 0


def _activities(backend: Any) -> list:
    found = getattr(backend, "_lc_activities", None)
    if found is None:
        found = backend._lc_activities = []
    return found


def apply() -> None:
    """moto: DescribeScalingActivities answers the activities recorded here (moto: none),
    newest first; PutScalingPolicy and DescribePolicies of a group that does not exist
    answer ValidationError as AWS does (moto stored a policy for no group); a policy's
    ARN has an id of its own (moto gave every policy the same one)."""
    from moto.autoscaling import models as asg_models
    from moto.autoscaling import responses as asg_responses
    from moto.autoscaling.exceptions import ValidationError
    from moto.core.responses import ActionResult

    cls = asg_responses.AutoScalingResponse

    def describe_scaling_activities(self: Any) -> Any:
        name = self._get_param("AutoScalingGroupName")
        ids = self._get_param("ActivityIds", []) or []
        limit = int(self._get_param("MaxRecords") or 100)
        found = [a for a in reversed(_activities(self.autoscaling_backend)) if (not name or a.auto_scaling_group_name == name) and (not ids or a.activity_id in ids)]
        return ActionResult({"Activities": found[:limit]})

    cls.describe_scaling_activities = describe_scaling_activities

    backend_cls = asg_models.AutoScalingBackend
    original_put = backend_cls.put_scaling_policy

    def put_scaling_policy(self: Any, name: str, policy_type: str, metric_aggregation_type: str, adjustment_type: str, as_name: str, *args: Any, **kwargs: Any) -> Any:
        if as_name not in self.autoscaling_groups:
            raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup {as_name} not found")
        # A policy is the group's and its name's (moto: the name's alone, so two groups'
        # policies of one name replaced each other); putting it again updates it, its ARN kept.
        key = f"{as_name}:{name}"
        if policy_type == "TargetTrackingScaling":
            spec = (kwargs.get("target_tracking_config") or {}).get("PredefinedMetricSpecification")
            for other_key, other in self.policies.items():
                if other_key != key and other.auto_scaling_group_name == as_name and other.policy_type == "TargetTrackingScaling" and spec is not None \
                        and getattr(other.target_tracking_configuration, "PredefinedMetricSpecification", None) == spec:
                    raise ValidationError("Only one TargetTrackingScaling policy for a given metric specification is allowed.")
        previous = self.policies.pop(key, None)
        saved = self.policies.pop(name, None)
        policy = original_put(self, name, policy_type, metric_aggregation_type, adjustment_type, as_name, *args, **kwargs)
        self.policies.pop(name, None)
        if saved is not None:
            self.policies[name] = saved
        if previous is not None and hasattr(previous, "_lc_id"):
            policy._lc_id = previous._lc_id
        self.policies[key] = policy
        if not policy.predictive_scaling_configuration:
            policy.predictive_scaling_configuration = None  # AWS lists none for other types
        policy.enabled = True
        policy.alarms = []
        if policy.policy_type == "TargetTrackingScaling":
            # The two alarms target tracking makes (and names) for the policy.
            alarm_id = previous._lc_alarm_id if previous is not None and hasattr(previous, "_lc_alarm_id") else str(uuid.uuid4())
            policy._lc_alarm_id = alarm_id
            for which in ("High", "Low"):
                alarm = f"TargetTracking-{as_name}-Alarm{which}-{alarm_id}"
                policy.alarms.append({"AlarmName": alarm, "AlarmARN": f"arn:aws:cloudwatch:{self.region_name}:{self.account_id}:alarm:{alarm}"})
        return policy

    backend_cls.put_scaling_policy = put_scaling_policy

    # PutScalingPolicy's answer: moto named the ARN `PolicyArn` (the model: `PolicyARN`),
    # which the serializer dropped, so the answer was empty; AWS adds the alarms.
    original_put_response = cls.put_scaling_policy

    def put_scaling_policy_response(self: Any) -> Any:
        original_put_response(self)
        name, group_name = self._get_param("PolicyName"), self._get_param("AutoScalingGroupName")
        policy = self.autoscaling_backend.policies[f"{group_name}:{name}"]
        return ActionResult({"PolicyARN": policy.arn, "Alarms": policy.alarms})

    cls.put_scaling_policy = put_scaling_policy_response

    original_describe = backend_cls.describe_policies

    def describe_policies(self: Any, autoscaling_group_name: str | None = None, policy_names: Any = None, policy_types: Any = None) -> Any:
        if autoscaling_group_name and autoscaling_group_name not in self.autoscaling_groups:
            raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup {autoscaling_group_name} not found")
        return original_describe(self, autoscaling_group_name, policy_names, policy_types)

    backend_cls.describe_policies = describe_policies

    def delete_policy(self: Any) -> Any:
        from moto.core.responses import EmptyResult

        group_name = self._get_param("AutoScalingGroupName")
        name = self._get_param("PolicyName")
        policies = self.autoscaling_backend.policies
        for key, policy in list(policies.items()):
            if name in (policy.name, policy.arn) and (not group_name or policy.auto_scaling_group_name == group_name):
                del policies[key]
        return EmptyResult()

    cls.delete_policy = delete_policy

    def execute_policy(self: Any, name: str) -> None:
        policy = next((p for p in self.policies.values() if name in (p.name, p.arn)), None)
        if policy is None:
            raise ValidationError(f"No scaling policy found for {name}")
        policy.execute()

    backend_cls.execute_policy = execute_policy

    # Deleting a group deletes its scaling policies, as on AWS.
    original_delete_group = backend_cls.delete_auto_scaling_group

    def delete_auto_scaling_group(self: Any, group_name: str) -> Any:
        result = original_delete_group(self, group_name)
        for key, policy in list(self.policies.items()):
            if policy.auto_scaling_group_name == group_name:
                del self.policies[key]
        return result

    backend_cls.delete_auto_scaling_group = delete_auto_scaling_group

    policy_cls = asg_models.FakeScalingPolicy

    def arn(self: Any) -> str:
        if not hasattr(self, "_lc_id"):
            self._lc_id = str(uuid.uuid4())
        b = self.autoscaling_backend
        return f"arn:aws:autoscaling:{b.region_name}:{b.account_id}:scalingPolicy:{self._lc_id}:autoScalingGroupName/{self.auto_scaling_group_name}:policyName/{self.name}"

    policy_cls.arn = property(arn)
    policy_cls.policy_arn = property(arn)
