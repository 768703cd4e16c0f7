"""Target tracking on ALBRequestCountPerTarget, end to end on a local cloud of its own:
a VPC with two subnets in two zones, an ALB, a target group and listener, a launch
template whose user-data serves HTTP 200, a group (min 1, max 3, desired 1, ELB health)
and a policy of 60 requests per target per minute. Load through the ALB's address makes
the group scale out (never above MaxSize, across both zones, each instance registered);
no traffic at all leaves it as it is (no datapoints); a trickle below the target makes it
scale back in to MinSize, the extra instances drained and then terminated. The scaling
activities say so, the policy reads back as it was put, and no request was refused by
the validator.

    sudo PG_BIN=/usr/lib/postgresql/15/bin .cache/venv/bin/python -m localcloud.tests.scaling
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = "lcscale"
PORT = 8080
TARGET = 60.0  # requests per target per minute
WARMUP = 8
KNOBS = {"scaling_period": 2, "scaling_out_periods": 1, "scaling_in_periods": 3}


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def start() -> tuple[subprocess.Popen, str, str]:
    state = tempfile.mkdtemp(prefix="lcscale.")
    os.chmod(state, 0o755)
    ready = os.path.join(state, "url")
    env = dict(os.environ, PYTHONPATH=ROOT, PG_BIN=os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
    logfile = open(os.path.join(state, "localcloud.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "localcloud", "--state", os.path.join(state, "cloud"), "--ready-file", ready],
        env=env, stdout=logfile, stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        if os.path.exists(ready) and open(ready).read().strip():
            return proc, open(ready).read().strip(), state
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    print(open(os.path.join(state, "localcloud.log")).read())
    raise SystemExit("the local cloud did not start")


def control(url: str, path: str, body: dict | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + "/_localcloud/" + path, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def retry(fn: Callable[[], Any], seconds: float = 15.0) -> Any:
    """Eventual consistency: a new id may be unknown for a couple of seconds."""
    deadline = time.time() + seconds
    while True:
        try:
            return fn()
        except ClientError as e:
            code = e.response["Error"]["Code"]
            if time.time() > deadline or not ("NotFound" in code or code in ("ValidationError", "InvalidSubnet", "InvalidSecurityGroup", "SubnetNotFound")):
                raise
            time.sleep(0.5)


def wait(what: str, check: Callable[[], Any], seconds: float) -> Any:
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


class Load:
    """Requests to the ALB's address, evenly paced at a rate (per second) that can change."""

    def __init__(self, address: str):
        from concurrent.futures import ThreadPoolExecutor

        self.url = f"http://{address}/"
        self.rate = 0.0
        self.sent = 0
        self.errors = 0
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(8)
        threading.Thread(target=self.run, daemon=True).start()

    def one(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as r:
                r.read()
            self.sent += 1
        except Exception:
            self.errors += 1

    def run(self) -> None:
        due = time.time()
        while not self.stop.is_set():
            if self.rate <= 0:
                time.sleep(0.05)
                due = time.time()
                continue
            due += 1.0 / self.rate
            self.pool.submit(self.one)
            time.sleep(max(0.0, due - time.time()))


def main() -> int:
    proc, url, state = start()
    log(f"local cloud at {url}")
    ok = False
    load: Load | None = None
    try:
        control(url, "settings", {"aws": {**KNOBS, "lost_answer_rate": 0}})
        cfg = Config(retries={"max_attempts": 10, "mode": "standard"})
        kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIALCSCALE", aws_secret_access_key="x", config=cfg)
        ec2, elb, asg = boto3.client("ec2", **kw), boto3.client("elbv2", **kw), boto3.client("autoscaling", **kw)

        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            retry(lambda z=z, c=c: ec2.create_subnet(VpcId=vpc, CidrBlock=c, AvailabilityZone=z))["Subnet"]["SubnetId"]
            for z, c in (("us-east-1b", "10.42.1.0/24"), ("us-east-1c", "10.42.2.0/24"))
        ]
        sg = retry(lambda: ec2.create_security_group(GroupName=f"{NAME}-sg", Description="scaling test", VpcId=vpc))["GroupId"]
        lb = retry(lambda: elb.create_load_balancer(Name=f"{NAME}-alb", Subnets=subnets, SecurityGroups=[sg], Type="application"))["LoadBalancers"][0]
        tg = retry(lambda: elb.create_target_group(
            Name=f"{NAME}-tg", Protocol="HTTP", Port=PORT, VpcId=vpc, TargetType="instance", HealthCheckPath="/",
            HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2, UnhealthyThresholdCount=2,
        ))["TargetGroups"][0]
        elb.modify_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"], Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "4"}])
        elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        user_data = f"#!/bin/sh\ncd /tmp && nohup python3 -m http.server {PORT} >/var/log/http.log 2>&1 &\n"
        import base64

        lt = retry(lambda: ec2.create_launch_template(
            LaunchTemplateName=f"{NAME}-lt",
            LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro", "SecurityGroupIds": [sg],
                                "UserData": base64.b64encode(user_data.encode()).decode()},
        ))["LaunchTemplate"]["LaunchTemplateId"]
        group = f"{NAME}-asg"
        retry(lambda: asg.create_auto_scaling_group(
            AutoScalingGroupName=group, MinSize=1, MaxSize=3, DesiredCapacity=1,
            LaunchTemplate={"LaunchTemplateId": lt, "Version": "$Latest"}, VPCZoneIdentifier=",".join(subnets),
            TargetGroupARNs=[tg["TargetGroupArn"]], HealthCheckType="ELB", HealthCheckGracePeriod=60,
        ))
        asg.update_auto_scaling_group(AutoScalingGroupName=group, HealthCheckGracePeriod=90)
        asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=1)

        # What AWS answers for a group that does not exist.
        for call in (lambda: asg.put_scaling_policy(AutoScalingGroupName="no-such-group", PolicyName="p", PolicyType="TargetTrackingScaling",
                                                    TargetTrackingConfiguration={"PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"}, "TargetValue": 50.0}),
                     lambda: asg.describe_policies(AutoScalingGroupName="no-such-group")):
            try:
                call()
                raise AssertionError("a policy call on a group that does not exist succeeded")
            except ClientError as e:
                assert e.response["Error"]["Code"] == "ValidationError", e.response
                log(f"missing group: {e.response['Error']['Code']}: {e.response['Error']['Message']}")

        def lb_part(arn: str) -> str:
            return arn.split(":loadbalancer/", 1)[1]

        label = f"{lb_part(lb['LoadBalancerArn'])}/{tg['TargetGroupArn'].split(':', 5)[5]}"
        policy_name = f"{NAME}-target-tracking"
        put = asg.put_scaling_policy(
            AutoScalingGroupName=group, PolicyName=policy_name, PolicyType="TargetTrackingScaling", EstimatedInstanceWarmup=WARMUP,
            TargetTrackingConfiguration={
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label},
                "TargetValue": TARGET, "DisableScaleIn": False,
            },
        )
        described = asg.describe_policies(AutoScalingGroupName=group)["ScalingPolicies"]
        assert len(described) == 1, described
        p = described[0]
        ttc = p["TargetTrackingConfiguration"]
        assert p["PolicyARN"] == put["PolicyARN"] and p["PolicyType"] == "TargetTrackingScaling", p
        assert p["EstimatedInstanceWarmup"] == WARMUP and p.get("Enabled") is True, p
        assert [a["AlarmName"].split("-Alarm")[1][:3] for a in put["Alarms"]] == ["Hig", "Low"] and p["Alarms"] == put["Alarms"], (put, p)
        assert "PredictiveScalingConfiguration" not in p, p
        assert ttc["PredefinedMetricSpecification"] == {"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label}, ttc
        assert ttc["TargetValue"] == TARGET and ttc["DisableScaleIn"] is False, ttc
        log(f"policy {policy_name} on {label}: reads back intact")
        try:
            asg.put_scaling_policy(AutoScalingGroupName=group, PolicyName=f"{NAME}-twin", PolicyType="TargetTrackingScaling",
                                   TargetTrackingConfiguration={"PredefinedMetricSpecification": {"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label}, "TargetValue": 99.0})
            raise AssertionError("a second policy on the same metric was taken")
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ValidationError", e.response
        # A CPU policy is stored and described, never evaluated (README: not emulated).
        asg.put_scaling_policy(AutoScalingGroupName=group, PolicyName=f"{NAME}-cpu", PolicyType="TargetTrackingScaling",
                               TargetTrackingConfiguration={"PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"}, "TargetValue": 50.0})
        cpu = asg.describe_policies(AutoScalingGroupName=group, PolicyNames=[f"{NAME}-cpu"])["ScalingPolicies"]
        assert cpu[0]["TargetTrackingConfiguration"]["PredefinedMetricSpecification"] == {"PredefinedMetricType": "ASGAverageCPUUtilization"}, cpu
        assert len(asg.describe_policies(AutoScalingGroupName=group)["ScalingPolicies"]) == 2
        asg.delete_policy(AutoScalingGroupName=group, PolicyName=f"{NAME}-cpu")
        assert [p["PolicyName"] for p in asg.describe_policies(AutoScalingGroupName=group)["ScalingPolicies"]] == [policy_name]

        def group_now() -> dict:
            return asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]

        def healthy() -> list[str]:
            return [d["Target"]["Id"] for d in elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
                    if d["TargetHealth"]["State"] == "healthy"]

        wait("the first instance to be healthy", lambda: len(healthy()) == 1, 90)
        address = next(b["address"] for b in control(url, "status")["balancers"] if b["name"] == f"{NAME}-alb")
        load = Load(address)
        peak = 0

        def desired() -> int:
            nonlocal peak
            d = group_now()["DesiredCapacity"]
            peak = max(peak, d)
            assert d <= 3, f"desired {d} above MaxSize"
            return d

        # AlarmNotification suspended (provision's deploy does so during a roll): the
        # policy does not act, whatever the load.
        asg.suspend_processes(AutoScalingGroupName=group, ScalingProcesses=["AlarmNotification"])
        load.rate = 10.0
        time.sleep(3 * KNOBS["scaling_period"] + 1)
        assert desired() == 1, "the policy acted with AlarmNotification suspended"
        log("AlarmNotification suspended: no scale-out under load")

        # Load: 10 requests a second = 600 a minute on one target, ten times the target.
        t0 = time.time()
        asg.resume_processes(AutoScalingGroupName=group, ScalingProcesses=["AlarmNotification"])
        wait("a scale-out", lambda: desired() > 1, 30)
        t_out = time.time() - t0
        log(f"scaled out to {desired()} after {t_out:.1f} s of load")
        wait("three healthy targets", lambda: len(healthy()) == 3 and desired() == 3, 90)
        t_full = time.time() - t0
        g = group_now()
        zones = {i["AvailabilityZone"] for i in g["Instances"]}
        assert zones == {"us-east-1b", "us-east-1c"}, zones
        log(f"3 healthy targets in {sorted(zones)} after {t_full:.1f} s")

        # No traffic at all: ELB publishes no datapoint, the alarms have no data, nothing moves.
        load.rate = 0.0
        time.sleep(WARMUP + 3 * KNOBS["scaling_period"] + 2)
        assert desired() == 3, "scaled in without datapoints"
        log("no traffic: no datapoints, desired stays 3")

        # A trickle well below the target (45 a minute across 3 targets: 15 per target, under
        # 90% of 60), at least one request each period: scale in to MinSize.
        t1 = time.time()
        load.rate = 0.75
        wait("a scale-in to MinSize", lambda: desired() == 1, 60)
        t_in = time.time() - t1
        log(f"scaled in to 1 after {t_in:.1f} s of trickle")

        def settled() -> bool:
            g = group_now()
            live = [i for i in g["Instances"] if i["LifecycleState"] != "Terminating"]
            return len(g["Instances"]) == 1 and len(live) == 1
        wait("the retired instances to go", settled, 60)
        t_gone = time.time() - t1
        gone = [i["InstanceId"] for r in ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["terminated"]}])["Reservations"] for i in r["Instances"]]
        assert len(gone) >= 2, gone
        assert len(healthy()) == 1, healthy()
        log(f"retired instances drained and terminated {t_gone:.1f} s after the trickle began: {gone}")

        acts = asg.describe_scaling_activities(AutoScalingGroupName=group)["Activities"]
        assert acts == sorted(acts, key=lambda a: a["StartTime"], reverse=True), "activities not newest first"
        launches = [a for a in acts if a["Description"].startswith("Launching a new EC2 instance")]
        ends = [a for a in acts if a["Description"].startswith("Terminating EC2 instance")]
        assert len(launches) >= 2 and len(ends) >= 2, acts
        assert all(a["StatusCode"] == "Successful" for a in launches + ends), acts
        assert all(f"triggered policy {policy_name} changing the desired capacity from" in a["Cause"] for a in launches + ends), acts
        assert "AlarmHigh" in launches[-1]["Cause"] and "AlarmLow" in ends[0]["Cause"], acts
        log(f"activities: {len(launches)} launches, {len(ends)} terminations; e.g. {ends[0]['Cause']}")

        # The same policy put again with DisableScaleIn: its ARN kept; it scales out, never in.
        again = asg.put_scaling_policy(
            AutoScalingGroupName=group, PolicyName=policy_name, PolicyType="TargetTrackingScaling", EstimatedInstanceWarmup=WARMUP,
            TargetTrackingConfiguration={
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label},
                "TargetValue": TARGET, "DisableScaleIn": True,
            },
        )
        assert again["PolicyARN"] == put["PolicyARN"], (again, put)
        assert asg.describe_policies(AutoScalingGroupName=group)["ScalingPolicies"][0]["TargetTrackingConfiguration"]["DisableScaleIn"] is True
        load.rate = 2.5  # 150 a minute: ceil(150 / 60) = 3
        wait("a scale-out with DisableScaleIn", lambda: desired() == 3, 30)
        wait("three healthy targets", lambda: len(healthy()) == 3, 90)
        load.rate = 0.75
        time.sleep(WARMUP + (KNOBS["scaling_in_periods"] + 2) * KNOBS["scaling_period"])
        assert desired() == 3, "scaled in with DisableScaleIn"
        log("DisableScaleIn: scaled out to 3, stays 3 under a trickle")
        load.rate = 0.0

        asg.delete_policy(AutoScalingGroupName=group, PolicyName=policy_name)
        assert asg.describe_policies(AutoScalingGroupName=group)["ScalingPolicies"] == []
        status = control(url, "status")
        violations = status["injected"]["violations"]
        assert violations == 0, status["injected"]["violation_list"]
        assert peak == 3, peak
        log(f"violations 0; timings: out {t_out:.1f} s, full {t_full:.1f} s, in {t_in:.1f} s, gone {t_gone:.1f} s; load sent {load.sent}, errors {load.errors}")
        ok = True
    finally:
        if load is not None:
            load.stop.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if ok:
            shutil.rmtree(state, ignore_errors=True)
        else:
            log(f"local cloud log kept: {state}/localcloud.log")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    # Stopped (scripts/test's cleanup): unwind, so the local cloud it started stops too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
