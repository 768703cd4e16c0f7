"""CloudWatch over Smithy RPC v2 CBOR against a local cloud this test starts itself:
python -m localcloud.tests.cbor (as root, PG_BIN set as scripts/lib/services.sh sets it).

botocore 1.44 ranks awsJson above CBOR (botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS),
so the CBOR client here is made with CBOR ranked first; every request it sends is checked to
be CBOR (its path, content type and smithy-protocol header, by botocore's before-send event)
and the local cloud's count of the CBOR requests it saw (`status` -> `rpc_v2_cbor`) too.
Exits non-zero on the first failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from typing import Any

import botocore.model
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:scale-alerts"
POLICY = (f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:scalingPolicy:1b2c3d4e-0000-1111-2222-333344445555:"
          "autoScalingGroupName/gallery-web:policyName/cpu-target")
FAILURES: list[str] = []


def check(cond: bool, what: str) -> None:
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def start() -> tuple[subprocess.Popen, str, str]:
    state = tempfile.mkdtemp(prefix="lc-cbor.")
    ready = os.path.join(state, "url")
    log = open(os.path.join(state, "localcloud.log"), "w")
    env = dict(os.environ, PYTHONPATH=ROOT, PG_BIN=os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
    proc = subprocess.Popen([sys.executable, "-m", "localcloud", "--state", os.path.join(state, "cloud"),
                             "--ready-file", ready], env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        if os.path.exists(ready) and os.path.getsize(ready) > 0:
            return proc, open(ready).read().strip(), os.path.join(state, "localcloud.log")
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"the local cloud did not start: see {log.name}")


def control(url: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + "/_localcloud/" + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def client(url: str, protocol: str, key: str, **config: Any) -> Any:
    """A CloudWatch client speaking `protocol` (botocore picks the first it supports of its ranking)."""
    import boto3

    ranking = botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS
    botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS = (protocol,) + tuple(p for p in ranking if p != protocol)
    try:
        c = boto3.client("cloudwatch", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key,
                         aws_secret_access_key="secret", config=Config(retries={"max_attempts": 3}, **config))
        assert c.meta.service_model.resolved_protocol == protocol
    finally:
        botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS = ranking
    return c


def code_of(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, int, str]:
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Message", "")
    return "", 200, ""


def raw(url: str, operation: str, body: bytes, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """A hand-made RPC v2 CBOR request (what boto3 would refuse to send)."""
    h = {"Content-Type": "application/cbor", "Accept": "application/cbor", "smithy-protocol": "rpc-v2-cbor",
         "Authorization": "AWS4-HMAC-SHA256 Credential=AKIARAWCBOR/20260101/us-east-1/monitoring/aws4_request, "
                          "SignedHeaders=host, Signature=0"}
    h.update(headers or {})
    req = urllib.request.Request(f"{url}/service/GraniteServiceVersion20100801/operation/{operation}", data=body,
                                 method="POST", headers=h)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def cbor(value: Any) -> bytes:
    """A small CBOR encoder for hand-made requests: str, int, float (f64), lists, and lists
    of pairs as definite maps."""
    import struct

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | ai]) + n.to_bytes(size, "big")
        raise ValueError(n)

    if isinstance(value, str):
        data = value.encode()
        return head(3, len(data)) + data
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value)
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(cbor(v) for v in value)
    raise TypeError(value)


def cbor_map_indefinite(pairs: list) -> bytes:
    return b"\xbf" + b"".join(cbor(k) + cbor(v) for k, v in pairs) + b"\xff"


def decode(body: bytes) -> Any:
    from localcloud.cbor import _Decoder

    return _Decoder().decode(body)


def run(url: str) -> None:
    sent: list[tuple[str, dict]] = []
    cw = client(url, "smithy-rpc-v2-cbor", "AKIACBORTEST")
    cw.meta.events.register("before-send", lambda request, **kw: sent.append((request.url, dict(request.headers))))
    name = "gallery-web-cpu-high"
    before = datetime.now(timezone.utc).replace(microsecond=0)

    # ---- put, describe back, tags ----------------------------------------------------
    cw.put_metric_alarm(
        AlarmName=name, AlarmDescription="scale out on CPU", ActionsEnabled=True,
        OKActions=[TOPIC], AlarmActions=[TOPIC, POLICY], InsufficientDataActions=[],
        MetricName="CPUUtilization", Namespace="AWS/EC2", Statistic="Average",
        Dimensions=[{"Name": "AutoScalingGroupName", "Value": "gallery-web"}],
        Period=60, EvaluationPeriods=3, DatapointsToAlarm=2, Threshold=70.0, Unit="Percent",
        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching",
        Tags=[{"Key": "stack", "Value": "gallery"}, {"Key": "role", "Value": "scale"}],
    )
    got = cw.describe_alarms(AlarmNames=[name], MaxRecords=10)
    alarms = got["MetricAlarms"]
    check(len(alarms) == 1 and got["CompositeAlarms"] == [], "DescribeAlarms(AlarmNames) finds the one alarm")
    a = alarms[0] if alarms else {}
    arn = f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{name}"
    expect = {
        "AlarmName": name, "AlarmArn": arn, "AlarmDescription": "scale out on CPU", "ActionsEnabled": True,
        "OKActions": [TOPIC], "AlarmActions": [TOPIC, POLICY], "InsufficientDataActions": [],
        "MetricName": "CPUUtilization", "Namespace": "AWS/EC2", "Statistic": "Average",
        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": "gallery-web"}], "Period": 60,
        "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "Threshold": 70.0, "Unit": "Percent",
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
        "StateValue": "INSUFFICIENT_DATA", "StateReason": "Unchecked: Initial alarm creation",
    }
    for k, v in expect.items():
        check(a.get(k) == v and type(a.get(k)) is type(v), f"{k} round-trips: {a.get(k)!r}")
    check("StateReasonData" not in a, f"no StateReasonData before a state change: {a.get('StateReasonData')!r}")
    for k in ("AlarmConfigurationUpdatedTimestamp", "StateUpdatedTimestamp", "StateTransitionedTimestamp"):
        t = a.get(k)
        check(isinstance(t, datetime) and before.timestamp() - 1 <= t.timestamp() <= time.time() + 1,
              f"{k} is a timestamp of now: {t!r}")
    tags = cw.list_tags_for_resource(ResourceARN=arn)["Tags"]
    check(sorted((t["Key"], t["Value"]) for t in tags) == [("role", "scale"), ("stack", "gallery")], f"ListTagsForResource: {tags}")

    # ---- state ------------------------------------------------------------------------
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold crossed (test)",
                       StateReasonData=json.dumps({"version": "1.0"}))
    found = cw.describe_alarms(StateValue="ALARM")["MetricAlarms"]
    check([x["AlarmName"] for x in found] == [name], "DescribeAlarms(StateValue=ALARM) finds it")
    check(found and found[0]["StateReason"] == "Threshold crossed (test)", "with its StateReason")
    check(found and json.loads(found[0].get("StateReasonData", "null")) == {"version": "1.0"}, "and its StateReasonData")
    check(found and found[0]["StateTransitionedTimestamp"] >= found[0]["AlarmConfigurationUpdatedTimestamp"], "StateTransitionedTimestamp moved")
    both = cw.describe_alarms(AlarmNames=[name], StateValue="OK")["MetricAlarms"]
    check(both == [], "DescribeAlarms(AlarmNames, StateValue=OK) applies both filters: nothing")
    both = cw.describe_alarms(AlarmNames=[name], StateValue="ALARM", MaxRecords=1)["MetricAlarms"]
    check(len(both) == 1, "DescribeAlarms(AlarmNames, StateValue=ALARM, MaxRecords=1) finds it")

    # An update overwrites the configuration, keeps the state, ignores Tags.
    cw.put_metric_alarm(AlarmName=name, MetricName="CPUUtilization", Namespace="AWS/EC2", Statistic="Average",
                        Dimensions=[{"Name": "AutoScalingGroupName", "Value": "gallery-web"}], Period=60,
                        EvaluationPeriods=3, Threshold=80.0, ComparisonOperator="GreaterThanOrEqualToThreshold",
                        AlarmActions=[TOPIC], Tags=[{"Key": "other", "Value": "x"}])
    a = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    check(a["Threshold"] == 80.0 and a["AlarmActions"] == [TOPIC], "an update overwrites the configuration")
    check(a["StateValue"] == "ALARM" and a["StateReason"] == "Threshold crossed (test)", "an update keeps the state")
    tags = cw.list_tags_for_resource(ResourceARN=arn)["Tags"]
    check(len(tags) == 2 and "other" not in {t["Key"] for t in tags}, "an update ignores Tags")

    # A metric math alarm (a 5xx rate): Metrics instead of MetricName/Statistic/Period.
    lb = {"Name": "LoadBalancer", "Value": "app/gallery/0123456789abcdef"}
    queries = [
        {"Id": "rate", "Expression": "100 * errors / MAX([errors, requests])", "Label": "5xx rate", "ReturnData": True},
        {"Id": "errors", "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_Target_5XX_Count",
                                                   "Dimensions": [lb]}, "Period": 60, "Stat": "Sum"}, "ReturnData": False},
        {"Id": "requests", "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount",
                                                     "Dimensions": [lb]}, "Period": 60, "Stat": "Sum"}, "ReturnData": False},
    ]
    cw.put_metric_alarm(AlarmName="gallery-5xx-rate", Metrics=queries, EvaluationPeriods=5, DatapointsToAlarm=3,
                        Threshold=5.0, ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
                        AlarmActions=[TOPIC])
    m = cw.describe_alarms(AlarmNames=["gallery-5xx-rate"])["MetricAlarms"]
    got_q = m[0].get("Metrics") if m else None
    check(got_q == queries and "MetricName" not in m[0] and "Period" not in m[0], f"a metric math alarm round-trips its Metrics: {got_q}")
    cw.delete_alarms(AlarmNames=["gallery-5xx-rate"])

    # Paging: 3 alarms, pages of 2.
    for i in range(2):
        cw.put_metric_alarm(AlarmName=f"page-{i}", MetricName="m", Namespace="n", Statistic="Sum", Period=60,
                            EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")
    p1 = cw.describe_alarms(MaxRecords=2)
    p2 = cw.describe_alarms(MaxRecords=2, NextToken=p1.get("NextToken", ""))
    listed = [x["AlarmName"] for x in p1["MetricAlarms"] + p2["MetricAlarms"]]
    check(len(p1["MetricAlarms"]) == 2 and "NextToken" in p1 and "NextToken" not in p2 and len(listed) == 3,
          f"DescribeAlarms pages by MaxRecords: {listed}")
    cw.delete_alarms(AlarmNames=["page-0", "page-1"])

    # ---- the other operations moto has, over CBOR -------------------------------------
    now = datetime.now(timezone.utc)
    cw.put_metric_data(Namespace="Gallery", MetricData=[
        {"MetricName": "Uploads", "Dimensions": [{"Name": "Stack", "Value": "g"}], "Timestamp": now, "Value": 3.0, "Unit": "Count"},
        {"MetricName": "Uploads", "Dimensions": [{"Name": "Stack", "Value": "g"}], "Timestamp": now, "Value": 5.0, "Unit": "Count"},
    ])
    stats = cw.get_metric_statistics(Namespace="Gallery", MetricName="Uploads", Dimensions=[{"Name": "Stack", "Value": "g"}],
                                     StartTime=datetime.fromtimestamp(now.timestamp() - 300, timezone.utc),
                                     EndTime=datetime.fromtimestamp(now.timestamp() + 300, timezone.utc),
                                     Period=600, Statistics=["Sum", "SampleCount"])
    dp = stats["Datapoints"]
    check(len(dp) == 1 and dp[0]["Sum"] == 8.0 and dp[0]["SampleCount"] == 2.0 and isinstance(dp[0]["Timestamp"], datetime),
          f"PutMetricData then GetMetricStatistics (timestamps in and out): {dp}")
    data = cw.get_metric_data(MetricDataQueries=[{"Id": "u", "MetricStat": {"Metric": {"Namespace": "Gallery", "MetricName": "Uploads",
                              "Dimensions": [{"Name": "Stack", "Value": "g"}]}, "Period": 60, "Stat": "Sum"}}],
                              StartTime=datetime.fromtimestamp(now.timestamp() - 300, timezone.utc),
                              EndTime=datetime.fromtimestamp(now.timestamp() + 300, timezone.utc))
    res = data["MetricDataResults"]
    check(len(res) == 1 and sum(res[0]["Values"]) == 8.0 and all(isinstance(t, datetime) for t in res[0]["Timestamps"]),
          f"GetMetricData: {res}")
    # Over 10 KiB: the SDK gzips PutMetricData (request compression).
    compressed: list[str] = []
    cw.meta.events.register("before-send.cloudwatch.PutMetricData",
                            lambda request, **kw: compressed.append(str(request.headers.get("Content-Encoding", ""))))
    cw.put_metric_data(Namespace="Gallery", MetricData=[
        {"MetricName": "Big", "Dimensions": [{"Name": "Stack", "Value": "g"}, {"Name": "Pad", "Value": "x" * 200}],
         "Timestamp": now, "Value": float(i), "Unit": "Count"} for i in range(60)])
    big = cw.get_metric_statistics(Namespace="Gallery", MetricName="Big",
                                   Dimensions=[{"Name": "Stack", "Value": "g"}, {"Name": "Pad", "Value": "x" * 200}],
                                   StartTime=datetime.fromtimestamp(now.timestamp() - 300, timezone.utc),
                                   EndTime=datetime.fromtimestamp(now.timestamp() + 300, timezone.utc),
                                   Period=600, Statistics=["SampleCount"])["Datapoints"]
    check("gzip" in "".join(compressed) and big and big[0]["SampleCount"] == 60.0,
          f"a gzipped PutMetricData ({compressed}): {big}")
    metrics = cw.list_metrics(Namespace="Gallery")["Metrics"]
    check(sorted(m["MetricName"] for m in metrics) == ["Big", "Uploads"], f"ListMetrics, each metric once: {[m['MetricName'] for m in metrics]}")
    check([x["AlarmName"] for x in cw.describe_alarms_for_metric(MetricName="CPUUtilization", Namespace="AWS/EC2")["MetricAlarms"]] == [name],
          "DescribeAlarmsForMetric")
    cw.disable_alarm_actions(AlarmNames=[name])
    check(cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["ActionsEnabled"] is False, "DisableAlarmActions")
    cw.enable_alarm_actions(AlarmNames=[name])
    check(cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["ActionsEnabled"] is True, "EnableAlarmActions")
    cw.tag_resource(ResourceARN=arn, Tags=[{"Key": "extra", "Value": "1"}])
    cw.untag_resource(ResourceARN=arn, TagKeys=["role"])
    keys = sorted(t["Key"] for t in cw.list_tags_for_resource(ResourceARN=arn)["Tags"])
    check(keys == ["extra", "stack"], f"TagResource, UntagResource: {keys}")
    board = json.dumps({"widgets": []})
    out = cw.put_dashboard(DashboardName="gallery", DashboardBody=board)
    check(out.get("DashboardValidationMessages") == [], "PutDashboard")
    d = cw.get_dashboard(DashboardName="gallery")
    check(d["DashboardBody"] == board and d["DashboardArn"].endswith(":dashboard/gallery"), "GetDashboard")
    entries = cw.list_dashboards()["DashboardEntries"]
    check([e["DashboardName"] for e in entries] == ["gallery"] and isinstance(entries[0]["LastModified"], datetime), "ListDashboards")
    cw.delete_dashboards(DashboardNames=["gallery"])
    check(code_of(cw.get_dashboard, DashboardName="gallery")[:2] == ("ResourceNotFound", 404), "GetDashboard of a deleted one: ResourceNotFound 404")
    cw.put_insight_rule(RuleName="r1", RuleState="ENABLED", RuleDefinition="{}")
    check([r["Name"] for r in cw.describe_insight_rules()["InsightRules"]] == ["r1"], "PutInsightRule, DescribeInsightRules")
    check(cw.disable_insight_rules(RuleNames=["r1"])["Failures"] == [], "DisableInsightRules")
    check(cw.enable_insight_rules(RuleNames=["r1"])["Failures"] == [], "EnableInsightRules")
    check(cw.delete_insight_rules(RuleNames=["r1"])["Failures"] == [], "DeleteInsightRules")

    # ---- faults and lost answers reach CBOR calls -------------------------------------
    control(url, "POST", "faults", {"operation": "monitoring:DescribeAlarms", "code": "LimitExceeded",
                                    "status": 400, "message": "asked by the test", "count": 1, "access_key": "AKIACBORTEST"})
    c, status, msg = code_of(cw.describe_alarms, AlarmNames=[name])
    check((c, status, msg) == ("LimitExceeded", 400, "asked by the test"), f"an asked fault answers in CBOR: {c} {status} {msg}")
    lost0 = control(url, "GET", "status")["injected"]["lost_answers"]
    control(url, "POST", "faults", {"operation": "monitoring:SetAlarmState", "lose_answer": True, "count": 1,
                                    "access_key": "AKIACBORTEST"})
    cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="recovered (test)")
    st = control(url, "GET", "status")
    check(st["injected"]["lost_answers"] == lost0 + 1, "a lost answer: applied, the connection closed, the SDK retried")
    check(cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] == "OK", "and the state is OK")

    # ---- delete, then not found -------------------------------------------------------
    cw.delete_alarms(AlarmNames=[name])
    check(cw.describe_alarms(AlarmNames=[name])["MetricAlarms"] == [], "DeleteAlarms: gone")
    c, status, msg = code_of(cw.list_tags_for_resource, ResourceARN=arn)
    check((c, status) == ("ResourceNotFoundException", 404), f"ListTagsForResource of it: {c} {status} {msg}")
    c, status, _ = code_of(cw.set_alarm_state, AlarmName=name, StateValue="ALARM", StateReason="x")
    check((c, status) == ("ResourceNotFound", 404), f"SetAlarmState of it: {c} {status}")

    # Every request was CBOR, and the local cloud saw them as CBOR.
    bad = [(u, h.get("Content-Type")) for u, h in sent
           if "/service/GraniteServiceVersion20100801/operation/" not in u
           or h.get("smithy-protocol") != b"rpc-v2-cbor" or h.get("Content-Type") not in (b"application/cbor", None)]
    check(sent != [] and bad == [], f"{len(sent)} requests sent, all RPC v2 CBOR (not: {bad[:3]})")
    st = control(url, "GET", "status")
    seen = st.get("rpc_v2_cbor", {})
    check(seen.get("monitoring:PutMetricAlarm", 0) >= 4 and seen.get("monitoring:DescribeAlarms", 0) >= 8,
          f"the local cloud counted them as CBOR: {seen}")
    check(st["injected"]["violations"] == 0, f"a normal run: violations 0 ({st['injected']['violation_list']})")

    # ---- as the Rust SDK encodes (aws-smithy-cbor): an indefinite-length map, definite
    # arrays, integers in their shortest form, doubles as f64, timestamps tag 1 + f64 ------
    rust = cbor_map_indefinite([
        ("AlarmName", "rust-shaped"), ("MetricName", "CPUUtilization"), ("Namespace", "AWS/EC2"),
        ("Statistic", "Average"), ("Period", 60), ("EvaluationPeriods", 3), ("Threshold", 55.5),
        ("ComparisonOperator", "GreaterThanThreshold"), ("TreatMissingData", "missing"),
        ("Dimensions", [[("Name", "AutoScalingGroupName"), ("Value", "gallery-web")]]),
        ("AlarmActions", [TOPIC]), ("OKActions", [TOPIC]), ("Tags", [[("Key", "stack"), ("Value", "gallery")]]),
    ])
    status, headers, answer = raw(url, "PutMetricAlarm", rust, {"x-amzn-query-mode": "true"})
    check(status == 200 and headers.get("smithy-protocol") == "rpc-v2-cbor", f"a Rust-shaped PutMetricAlarm: {status} {answer[:200]!r}")
    status, headers, answer = raw(url, "DescribeAlarms", cbor_map_indefinite([("AlarmNames", ["rust-shaped"]), ("MaxRecords", 1)]))
    out = decode(answer) if status == 200 else {}
    ma = (out.get("MetricAlarms") or [{}])[0]
    check(status == 200 and headers.get("Content-Type") == "application/cbor" and ma.get("AlarmName") == "rust-shaped"
          and isinstance(ma.get("Threshold"), float) and ma.get("Threshold") == 55.5 and ma.get("Period") == 60
          and ma.get("Dimensions") == [{"Name": "AutoScalingGroupName", "Value": "gallery-web"}]
          and b"\x75StateUpdatedTimestamp\xc1" in answer and b"\x78\x22AlarmConfigurationUpdatedTimestamp\xc1" in answer,
          f"its DescribeAlarms answer: Threshold a CBOR float, timestamps tag 1: {status} {ma}")
    status, headers, answer = raw(url, "DeleteAlarms", cbor_map_indefinite([("AlarmNames", ["rust-shaped"])]))
    check(status == 200 and answer == b"", f"DeleteAlarms (no output): 200 and an empty body: {status} {answer!r}")

    # ---- what AWS refuses ---------------------------------------------------------------
    loose = client(url, "smithy-rpc-v2-cbor", "AKIACBORLOOSE", parameter_validation=False)
    refused = [
        ("Period 0", lambda: loose.put_metric_alarm(AlarmName="bad", MetricName="m", Namespace="n", Statistic="Sum", Period=0,
                                                   EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")),
        ("no AlarmName", lambda: loose.put_metric_alarm(MetricName="m", Namespace="n", Statistic="Sum", Period=60,
                                                       EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")),
        ("StateValue not in the enum", lambda: loose.set_alarm_state(AlarmName="x", StateValue="RED", StateReason="x")),
        ("MaxRecords 101", lambda: loose.describe_alarms(MaxRecords=101)),
    ]
    count = 0
    for what, fn in refused:
        c, status, msg = code_of(fn)
        count += 1
        check((c, status) == ("ValidationError", 400) and "validation error" in msg, f"{what}: refused {c} {status}: {msg}")
    alarm = dict(AlarmName="bad", MetricName="m", Namespace="n", Statistic="Sum", Period=60, EvaluationPeriods=1,
                 Threshold=1.0, ComparisonOperator="GreaterThanThreshold")
    beyond = [
        ("Period 45", dict(alarm, Period=45), "ValidationError"),
        ("Period x EvaluationPeriods over a day", dict(alarm, Period=600, EvaluationPeriods=200), "ValidationError"),
        ("DatapointsToAlarm over EvaluationPeriods", dict(alarm, EvaluationPeriods=2, DatapointsToAlarm=3), "ValidationError"),
        ("Statistic and ExtendedStatistic", dict(alarm, ExtendedStatistic="p99"), "InvalidParameterCombination"),
        ("no Period", {k: v for k, v in alarm.items() if k != "Period"}, "ValidationError"),
    ]
    for what, params, expected in beyond:
        c, status, msg = code_of(cw.put_metric_alarm, **params)
        count += 1
        check((c, status) == (expected, 400), f"{what}: refused {c} {status}: {msg}")
    check(cw.describe_alarms(AlarmNames=["bad"])["MetricAlarms"] == [], "and none of them made an alarm")
    # Unknown member, by hand: {"AlarmNames": ["x"], "Bogus": "1"}.
    body = b"\xa2" + b"\x6aAlarmNames" + b"\x81\x61x" + b"\x65Bogus" + b"\x611"
    status, headers, answer = raw(url, "DeleteAlarms", body)
    err = decode(answer) if answer else {}
    count += 1
    check(status == 400 and headers.get("smithy-protocol") == "rpc-v2-cbor" and headers.get("Content-Type") == "application/cbor"
          and err.get("__type") == "com.amazonaws.cloudwatch#ValidationException" and "Bogus" in err.get("message", "")
          and headers.get("x-amzn-query-error") == "ValidationError;Sender", f"an unknown member: {status} {headers} {err}")
    status, headers, answer = raw(url, "DescribeAlarms", b"\xff\x00garbage")
    err = decode(answer) if answer else {}
    count += 1
    check(status == 400 and err.get("__type") == "com.amazonaws.cloudwatch#SerializationException", f"a body that is not CBOR: {status} {err}")
    status, headers, answer = raw(url, "NoSuchOperation", b"\xa0")
    err = decode(answer) if answer else {}
    count += 1
    check(status == 400 and err.get("__type", "").endswith("#InvalidAction"), f"an unknown operation: {status} {err}")
    # JSON (botocore's default for CloudWatch) gets the same refusal in awsJson.
    js = client(url, "json", "AKIAJSONLOOSE", parameter_validation=False)
    c, status, msg = code_of(js.put_metric_alarm, AlarmName="bad", MetricName="m", Namespace="n", Statistic="Sum", Period=0,
                             EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")
    count += 1
    check((c, status) == ("ValidationError", 400), f"over JSON, Period 0: {c} {status} {msg}")
    control(url, "POST", "faults", {"operation": "monitoring:DeleteAlarms", "code": "LimitExceeded",
                                    "status": 400, "message": "asked by the test", "count": 1, "access_key": "AKIAJSONLOOSE"})
    c, status, msg = code_of(js.delete_alarms, AlarmNames=["none"])
    check((c, status, msg) == ("LimitExceeded", 400, "asked by the test"), f"over JSON, an asked fault: {c} {status} {msg}")
    # What moto lacks: 501, not retried, not a violation.
    c, status, msg = code_of(cw.describe_alarm_history, AlarmName="x")
    check((c, status) == ("NotImplemented", 501), f"an operation moto lacks: {c} {status} {msg}")
    st = control(url, "GET", "status")
    check(st["injected"]["violations"] == count, f"each refusal counted: {st['injected']['violations']} of {count}")


def main() -> int:
    proc, url, log = start()
    try:
        # No lost answers at random: the test asks for the one it checks.
        control(url, "POST", "settings", {"aws": {"lost_answer_rate": 0}})
        run(url)
    except Exception as e:  # a failure of the test itself, not a check
        import traceback

        traceback.print_exc()
        FAILURES.append(f"{type(e).__name__}: {e}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    if FAILURES:
        print(f"{len(FAILURES)} failed (local cloud log: {log})")
        return 1
    import shutil

    shutil.rmtree(os.path.dirname(log), ignore_errors=True)
    print("all passed")
    return 0


if __name__ == "__main__":
    # Stopped (scripts/test's cleanup): unwind, so the local cloud it started stops too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
