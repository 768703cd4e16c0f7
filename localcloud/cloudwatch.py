"""CloudWatch alarms as AWS keeps them, where moto differs (README.md, "moto's mistakes
corrected"):

- a new alarm is `INSUFFICIENT_DATA` ("Unchecked: Initial alarm creation", no
  `StateReasonData`) until it is evaluated (moto: `OK`, `"{}"`); alarms are not evaluated
  here, so only SetAlarmState moves them;
- PutMetricAlarm of an alarm that exists overwrites its configuration but leaves its state
  alone, and ignores `Tags` (AWS: tags change only by TagResource/UntagResource); moto made
  a new alarm (`OK` again) and merged the tags;
- `StateTransitionedTimestamp`: when the state last changed (moto had none);
- DeleteAlarms takes the alarm's tags with it, and ListTagsForResource (and TagResource,
  UntagResource) of an alarm or Contributor Insights rule that does not exist answers
  `ResourceNotFoundException` (moto listed no tags, or the deleted alarm's);
- ListMetrics lists a metric of several dimensions once (moto: once per datum);
- DescribeAlarms applies every filter it is given (`AlarmNames` or `AlarmNamePrefix`,
  `ActionPrefix`, `StateValue`; moto used only the first one present), lists metric
  alarms only unless `AlarmTypes` says otherwise, in name order, in pages of `MaxRecords`
  (default 50) with a `NextToken` (moto: everything at once)."""

from __future__ import annotations

import logging
from typing import Any

from moto.cloudwatch import models as cw_models
from moto.cloudwatch import responses as cw_responses
from moto.cloudwatch.exceptions import CloudWatchException, InvalidParameterCombination, ResourceNotFoundException
from moto.core.responses import ActionResult

log = logging.getLogger("localcloud.cloudwatch")

INITIAL_STATE = "INSUFFICIENT_DATA"
INITIAL_REASON = "Unchecked: Initial alarm creation"
PAGE = 50


class InvalidNextToken(CloudWatchException):
    code = "InvalidNextToken"


def apply() -> None:
    _dimensions()
    _alarm_state()
    _alarm_update()
    _tags()
    _describe_alarms()


def _dimensions() -> None:
    """Two dimension sets are the same metric when they hold the same name/value pairs
    (moto compared every pair with every other, so any metric of two or more dimensions
    differed from itself: ListMetrics listed it once per datum)."""

    def are_dimensions_same(metric_dimensions: list[Any], dimensions: list[Any]) -> bool:
        return len(metric_dimensions) == len(dimensions) and {(d.name, d.value) for d in metric_dimensions} == {
            (d.name, d.value) for d in dimensions
        }

    cw_models.are_dimensions_same = are_dimensions_same


def _alarm_state() -> None:
    alarm_cls = cw_models.Alarm
    original_init = alarm_cls.__init__
    original_update = alarm_cls.update_state

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.state_value = INITIAL_STATE
        self.state_reason = INITIAL_REASON
        self.state_reason_data = None  # AWS shows none until the state changes (moto: "{}")
        self.state_transitioned_timestamp = self.state_updated_timestamp

    def update_state(self: Any, reason: str, reason_data: str, state_value: str) -> None:
        before = self.state_value
        original_update(self, reason, reason_data, state_value)
        if state_value != before:
            self.state_transitioned_timestamp = self.state_updated_timestamp

    alarm_cls.__init__ = __init__
    alarm_cls.update_state = update_state


def _alarm_update() -> None:
    backend_cls = cw_models.CloudWatchBackend
    original_put = backend_cls.put_metric_alarm

    def put_metric_alarm(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        existing = self.alarms.get(name)
        if existing is not None:
            kwargs["tags"] = None  # AWS ignores Tags when updating an alarm
        alarm = original_put(self, name, *args, **kwargs)
        if existing is not None:
            for attr in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp",
                         "state_transitioned_timestamp", "history"):
                if hasattr(existing, attr):
                    setattr(alarm, attr, getattr(existing, attr))
        return alarm

    backend_cls.put_metric_alarm = put_metric_alarm


def _exists(backend: Any, arn: str) -> bool:
    """Whether a taggable CloudWatch resource (an alarm, a Contributor Insights rule) exists."""
    if any(a.alarm_arn == arn for a in backend.alarms.values()):
        return True
    if ":insight-rule/" in arn:
        name = arn.split(":insight-rule/", 1)[1]
        return name in getattr(backend, "insight_rules", {})
    return False


def _tags() -> None:
    backend_cls = cw_models.CloudWatchBackend
    original_list = backend_cls.list_tags_for_resource
    original_tag = backend_cls.tag_resource
    original_untag = backend_cls.untag_resource
    original_delete = backend_cls.delete_alarms

    def list_tags_for_resource(self: Any, arn: str) -> dict[str, str]:
        if not _exists(self, arn):
            raise ResourceNotFoundException(f"The resource {arn} does not exist.")
        return original_list(self, arn)

    def tag_resource(self: Any, arn: str, tags: dict[str, str]) -> None:
        if not _exists(self, arn):
            raise ResourceNotFoundException(f"The resource {arn} does not exist.")
        return original_tag(self, arn, tags)

    def untag_resource(self: Any, arn: str, tag_keys: list[str]) -> None:
        if not _exists(self, arn):
            raise ResourceNotFoundException(f"The resource {arn} does not exist.")
        if arn not in self.tagger.tags:
            return  # an alarm without tags: nothing to remove (moto answered not found)
        return original_untag(self, arn, tag_keys)

    def delete_alarms(self: Any, alarm_names: list[str]) -> None:
        arns = [self.alarms[n].alarm_arn for n in alarm_names if n in self.alarms]
        original_delete(self, alarm_names)
        for arn in arns:
            self.tagger.delete_all_tags_for_resource(arn)

    backend_cls.list_tags_for_resource = list_tags_for_resource
    backend_cls.tag_resource = tag_resource
    backend_cls.untag_resource = untag_resource
    backend_cls.delete_alarms = delete_alarms


def _describe_alarms() -> None:
    response_cls = cw_responses.CloudWatchResponse

    def describe_alarms(self: Any) -> ActionResult:
        p = self._get_params()
        names = p.get("AlarmNames") or []
        prefix = p.get("AlarmNamePrefix")
        if names and prefix:
            raise InvalidParameterCombination("AlarmNamePrefix and AlarmNames cannot both be specified.")
        action_prefix = p.get("ActionPrefix")
        state = p.get("StateValue")
        types = p.get("AlarmTypes") or ["MetricAlarm"]
        alarms = sorted(self.cloudwatch_backend.alarms.values(), key=lambda a: a.name)
        if names:
            alarms = [a for a in alarms if a.name in names]
        if prefix:
            alarms = [a for a in alarms if a.name.startswith(prefix)]
        if action_prefix:
            alarms = [a for a in alarms if any(x.startswith(action_prefix) for x in a.alarm_actions)]
        if state:
            alarms = [a for a in alarms if a.state_value == state]
        listed = [a for a in alarms if a.rule is None and "MetricAlarm" in types]
        listed += [a for a in alarms if a.rule is not None and "CompositeAlarm" in types]
        size = int(p.get("MaxRecords") or PAGE)
        start = 0
        token = p.get("NextToken")
        if token:
            try:
                start = int(token)
            except ValueError:
                raise InvalidNextToken("The NextToken is not valid.")
        page = listed[start : start + size]
        result: dict[str, Any] = {
            "MetricAlarms": [a for a in page if a.rule is None],
            "CompositeAlarms": [a for a in page if a.rule is not None],
        }
        if start + size < len(listed):
            result["NextToken"] = str(start + size)
        return ActionResult(result)

    response_cls.describe_alarms = describe_alarms


# ---- the rules beyond the model (validate.py calls this) -------------------------------

HIGH_RESOLUTION_PERIODS = (10, 20, 30)
MAX_RANGE = 7 * 86400  # Period x EvaluationPeriods, seconds
MAX_RANGE_SHORT = 86400  # the same for a Period under an hour


def check_request(call: Any) -> None:
    """PutMetricAlarm as CloudWatch's API reference says it takes it: a metric alarm names
    its metric (MetricName, Namespace, a Period and exactly one of Statistic or
    ExtendedStatistic) or gives `Metrics`, not both; a Period is 10, 20, 30 or a multiple of
    60; Period x EvaluationPeriods is at most 7 days (1 day for a Period under an hour);
    DatapointsToAlarm is at most EvaluationPeriods. (The codes are this rig's reading:
    `ValidationError`, `InvalidParameterCombination`; AWS's exact wording not verified.)"""
    from .validate import Violation

    if call.operation != "PutMetricAlarm":
        return
    p = call.params
    metrics = p.get("Metrics")
    single = [k for k in ("MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit") if p.get(k) not in (None, [])]
    if metrics:
        if single:
            raise Violation("InvalidParameterCombination", f"The parameters Metrics and {single[0]} are mutually exclusive and you have specified both.")
        return
    for name in ("MetricName", "Namespace", "Period"):
        if p.get(name) is None:
            raise Violation("ValidationError", f"The parameter {name} is required for an alarm on a single metric.")
    if (p.get("Statistic") is None) == (p.get("ExtendedStatistic") is None):
        raise Violation("InvalidParameterCombination", "Exactly one of the parameters Statistic and ExtendedStatistic must be specified.")
    period = int(p["Period"])
    if period not in HIGH_RESOLUTION_PERIODS and period % 60 != 0:
        raise Violation("ValidationError", f"The parameter Period must be 10, 20, 30 or a multiple of 60, not {period}.")
    evaluations = int(p.get("EvaluationPeriods") or 0)
    limit = MAX_RANGE_SHORT if period < 3600 else MAX_RANGE
    if period * evaluations > limit:
        raise Violation("ValidationError", f"The evaluation range Period x EvaluationPeriods ({period * evaluations} s) must not exceed {limit} s.")
    datapoints = p.get("DatapointsToAlarm")
    if datapoints is not None and int(datapoints) > evaluations:
        raise Violation("ValidationError", f"DatapointsToAlarm ({datapoints}) must be less than or equal to EvaluationPeriods ({evaluations}).")
