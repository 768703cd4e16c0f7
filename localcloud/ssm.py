"""SSM Run Command for instances that really run (moto's SendCommand runs nothing and
its invocations never change). An instance's agent registers once its role's credentials
are served by IMDS and its role allows ssm:UpdateInstanceInformation; SendCommand
(AWS-RunShellScript) then runs the script inside the instance's sandbox (its network,
PID and mount namespaces and its root, as root, as the agent does), and
GetCommandInvocation, ListCommandInvocations and CancelCommand report and stop it.
DescribeInstanceInformation lists the registered instances. Answered here, in SSM's
JSON, after the fault layer's validation; every other SSM call goes to moto."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from moto.iam.models import iam_backends

from .settings import LOCK, SETTINGS

log = logging.getLogger("localcloud.ssm")
ACCOUNT = "123456789012"
OPERATIONS = {"SendCommand", "GetCommandInvocation", "ListCommandInvocations", "CancelCommand", "DescribeInstanceInformation"}
# GetCommandInvocation's StandardOutputContent holds the first 24,000 characters of the
# output, StandardErrorContent the first 8,000 (more goes to S3 output only); the agent
# cuts by bytes, so multi-byte text is cut sooner.
OUTPUT_LIMIT = 24000
ERROR_LIMIT = 8000
TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut"}
AGENT_VERSION = "3.3.0.0"


class SsmError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Invocation:
    command_id: str
    instance_id: str
    document: str
    script: str
    execution_timeout: float
    comment: str
    requested: float
    visible_at: float
    status: str = "Pending"
    details: str = "Pending"
    code: int = -1
    started: float = 0.0
    ended: float = 0.0
    out_path: str = ""
    err_path: str = ""
    process: subprocess.Popen | None = None
    cancel: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def output(self, path: str, limit: int = OUTPUT_LIMIT) -> str:
        try:
            with open(path, "rb") as f:
                return f.read(limit).decode(errors="ignore")
        except OSError:
            return ""


def _allows(document: Any, action: str) -> bool:
    """Whether a policy document has an Allow statement naming `action` (wildcards as IAM
    reads them). Deny statements and conditions are not evaluated (README: not emulated)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return False
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    for st in statements:
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        actions = st.get("Action", [])
        for a in [actions] if isinstance(actions, str) else actions:
            if fnmatch.fnmatchcase(action.lower(), str(a).lower()):
                return True
    return False


class RunCommand:
    def __init__(self, cloud: Any):
        self.cloud = cloud
        self.invocations: dict[tuple[str, str], Invocation] = {}
        self.commands: dict[str, list[str]] = {}
        self.registered: dict[str, float] = {}
        self.lock = threading.Lock()

    # ---- registration ---------------------------------------------------------------

    def _metadata(self, instance_id: str) -> dict | None:
        box = self.cloud.instances.boxes.get(instance_id)
        if box is None:
            return None
        try:
            with open(os.path.join(box.box, "metadata.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def _role_allows_agent(self, role_name: str) -> bool:
        with LOCK:
            iam = iam_backends[ACCOUNT]["global"]
            role = iam.roles.get(role_name) if hasattr(iam.roles, "get") else None
            if role is None:
                role = next((r for r in iam.roles.values() if r.name == role_name), None)
            if role is None:
                return False
            documents = list(getattr(role, "policies", {}).values())
            for arn in getattr(role, "managed_policies", {}) or {}:
                policy = iam.managed_policies.get(arn)
                if policy is not None:
                    documents.append(policy.document)
        return any(_allows(d, "ssm:UpdateInstanceInformation") for d in documents)

    def online(self, instance_id: str, region: str) -> bool:
        """The agent has registered and is pinging: the sandbox runs, its role's
        credentials are served, and the role lets it call UpdateInstanceInformation."""
        box = self.cloud.instances.boxes.get(instance_id)
        meta = self._metadata(instance_id)
        if box is None or meta is None or box.state != "running" or meta.get("region") != region:
            return False
        if instance_id in self.registered:
            return True
        if not meta.get("role") or time.time() < float(meta.get("credentials_at", 0)):
            return False
        if not self._role_allows_agent(meta["role"]):
            return False
        self.registered[instance_id] = time.time()
        log.info("instance %s: SSM agent registered (role %s)", instance_id, meta["role"])
        return True

    # ---- the calls --------------------------------------------------------------------

    def handle(self, call: Any) -> dict:
        p = call.params or {}
        if call.operation == "DescribeInstanceInformation":
            return self.describe_instance_information(p, call.region)
        if call.operation == "SendCommand":
            return self.send_command(p, call.region)
        if call.operation == "GetCommandInvocation":
            return self.get_command_invocation(p)
        if call.operation == "ListCommandInvocations":
            return self.list_command_invocations(p)
        return self.cancel_command(p)

    def describe_instance_information(self, p: dict, region: str) -> dict:
        wanted: set[str] | None = None
        for f in (p.get("Filters") or []) + (p.get("InstanceInformationFilterList") or []):
            key = f.get("Key") or f.get("key")
            values = f.get("Values") or f.get("valueSet") or []
            if key in ("InstanceIds", "instanceIds"):
                wanted = set(values)
        out = []
        for box in self.cloud.instances.sandboxes():
            if wanted is not None and box.instance_id not in wanted:
                continue
            registered = self.online(box.instance_id, region)
            if not registered and box.instance_id not in self.registered:
                continue
            seen = time.time() if registered else self.registered[box.instance_id]
            out.append(
                {
                    "InstanceId": box.instance_id,
                    "PingStatus": "Online" if registered else "ConnectionLost",
                    "LastPingDateTime": seen,
                    "AgentVersion": AGENT_VERSION,
                    "IsLatestVersion": True,
                    "PlatformType": "Linux",
                    "PlatformName": "Amazon Linux",
                    "PlatformVersion": "2023",
                    "ResourceType": "EC2Instance",
                    "IPAddress": box.private_ip,
                    "ComputerName": f"ip-{box.private_ip.replace('.', '-')}.ec2.internal",
                }
            )
        return {"InstanceInformationList": sorted(out, key=lambda i: i["InstanceId"])}

    def send_command(self, p: dict, region: str) -> dict:
        document = p.get("DocumentName", "")
        if document != "AWS-RunShellScript":
            raise SsmError("InvalidDocument", f"the local cloud runs AWS-RunShellScript only, not {document}")
        if p.get("Targets"):
            raise SsmError("InvalidParameters", "the local cloud takes InstanceIds, not Targets")
        ids = list(p.get("InstanceIds") or [])
        if not ids:
            raise SsmError("InvalidInstanceId", "no instance given")
        unready = [i for i in ids if not self.online(i, region)]
        if unready:
            raise SsmError("InvalidInstanceId", f"Instances {unready} not in a valid state for account {ACCOUNT}")
        params = p.get("Parameters") or {}
        commands = params.get("commands") or []
        if not commands:
            raise SsmError("InvalidParameters", "AWS-RunShellScript needs the parameter commands")
        try:
            timeout = float((params.get("executionTimeout") or ["3600"])[0])
        except ValueError:
            raise SsmError("InvalidParameters", "executionTimeout must be a number of seconds") from None
        command_id = str(uuid.uuid4())
        now = time.time()
        lag = float(SETTINGS.aws.get("invocation_lag", 0.0))
        with self.lock:
            self.commands[command_id] = ids
            for i in ids:
                inv = Invocation(command_id, i, document, "\n".join(commands), timeout, p.get("Comment", ""), now, now + random.uniform(0, lag))
                self.invocations[(command_id, i)] = inv
                threading.Thread(target=self._run, args=(inv,), daemon=True).start()
        return {
            "Command": {
                "CommandId": command_id,
                "DocumentName": document,
                "DocumentVersion": "$DEFAULT",
                "Comment": p.get("Comment", ""),
                "Parameters": params,
                "InstanceIds": ids,
                "Targets": [],
                "RequestedDateTime": now,
                "Status": "Pending",
                "StatusDetails": "Pending",
                "TargetCount": len(ids),
                "CompletedCount": 0,
                "ErrorCount": 0,
                "DeliveryTimedOutCount": 0,
                "TimeoutSeconds": int(p.get("TimeoutSeconds", 3600)),
            }
        }

    def _invocation(self, command_id: str, instance_id: str) -> Invocation:
        inv = self.invocations.get((command_id, instance_id))
        # Right after SendCommand, AWS may not know the invocation yet.
        if inv is None or time.time() < inv.visible_at:
            raise SsmError("InvocationDoesNotExist", "")
        return inv

    def _view(self, inv: Invocation) -> dict:
        # The agent reports a plugin's output when it ends: nothing while it runs.
        ended = inv.status in TERMINAL
        return {
            "CommandId": inv.command_id,
            "InstanceId": inv.instance_id,
            "Comment": inv.comment,
            "DocumentName": inv.document,
            "DocumentVersion": "$DEFAULT",
            "PluginName": "aws:runShellScript",
            "ResponseCode": inv.code,
            "ExecutionStartDateTime": _stamp(inv.started) if inv.started else "",
            "ExecutionElapsedTime": f"PT{(inv.ended or time.time()) - inv.started:.3f}S" if inv.started else "",
            "ExecutionEndDateTime": _stamp(inv.ended) if inv.ended else "",
            "Status": inv.status,
            "StatusDetails": inv.details,
            "StandardOutputContent": inv.output(inv.out_path) if ended else "",
            "StandardOutputUrl": "",
            "StandardErrorContent": inv.output(inv.err_path, ERROR_LIMIT) if ended else "",
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
        }

    def get_command_invocation(self, p: dict) -> dict:
        return self._view(self._invocation(p.get("CommandId", ""), p.get("InstanceId", "")))

    def list_command_invocations(self, p: dict) -> dict:
        command_id, instance_id = p.get("CommandId"), p.get("InstanceId")
        now = time.time()
        out = []
        for inv in list(self.invocations.values()):
            if (command_id and inv.command_id != command_id) or (instance_id and inv.instance_id != instance_id):
                continue
            if now < inv.visible_at:
                continue
            view = self._view(inv)
            out.append(
                {
                    "CommandId": inv.command_id,
                    "InstanceId": inv.instance_id,
                    "DocumentName": inv.document,
                    "Comment": inv.comment,
                    "RequestedDateTime": inv.requested,
                    "Status": inv.status,
                    "StatusDetails": inv.details,
                    "CommandPlugins": [
                        {
                            "Name": "aws:runShellScript",
                            "Status": inv.status,
                            "StatusDetails": inv.details,
                            "ResponseCode": inv.code,
                            "Output": view["StandardOutputContent"][:2500] if p.get("Details") else "",
                        }
                    ],
                }
            )
        return {"CommandInvocations": out}

    def cancel_command(self, p: dict) -> dict:
        command_id = p.get("CommandId", "")
        if command_id not in self.commands:
            raise SsmError("InvalidCommandId", "")
        ids = p.get("InstanceIds") or self.commands[command_id]
        for i in ids:
            inv = self.invocations.get((command_id, i))
            if inv is None:
                continue
            with inv.lock:
                if inv.status in TERMINAL:
                    continue
                inv.cancel = True
                inv.status, inv.details = "Cancelling", "Cancelling"
            self._kill(inv)
        return {}

    # ---- the agent ----------------------------------------------------------------------

    def _kill(self, inv: Invocation) -> None:
        proc = inv.process
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _run(self, inv: Invocation) -> None:
        """What the agent does with one invocation: pick it up, run it as root inside the
        instance, record how it ended."""
        time.sleep(min(0.2, max(0.0, inv.visible_at - time.time())))
        box = self.cloud.instances.boxes.get(inv.instance_id)
        init = self.cloud.instances._guest_init_pid(box) if box is not None and box.state == "running" else None
        work = os.path.join(self.cloud.instances.dir, inv.instance_id, "ssm", inv.command_id)
        os.makedirs(work, exist_ok=True)
        inv.out_path, inv.err_path = os.path.join(work, "stdout"), os.path.join(work, "stderr")
        with inv.lock:
            if inv.cancel:
                inv.status, inv.details, inv.ended = "Cancelled", "Cancelled", time.time()
                return
            if init is None:
                inv.status, inv.details, inv.ended = "Failed", "Undeliverable", time.time()
                return
            try:
                with open(os.path.join(box.box, "env.json")) as f:
                    platform_env = json.load(f)
            except (OSError, ValueError):
                platform_env = {}
            env = {
                "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": "/root",
                "LANG": "C.UTF-8",
                **platform_env,
            }
            with open(inv.out_path, "wb") as out, open(inv.err_path, "wb") as err:
                inv.process = subprocess.Popen(
                    ["nsenter", f"--target={init}", "--mount", "--net", "--pid", "--root", "--wd",
                     "--", "/bin/sh", "-c", inv.script],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, start_new_session=True,
                )
            inv.started = time.time()
            inv.status, inv.details = "InProgress", "InProgress"
        timed_out = False
        try:
            inv.process.wait(timeout=inv.execution_timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self._kill(inv)
            inv.process.wait()
        with inv.lock:
            inv.ended = time.time()
            code = inv.process.returncode
            if inv.cancel:
                inv.status, inv.details, inv.code = "Cancelled", "Cancelled", -1
            elif timed_out:
                inv.status, inv.details, inv.code = "TimedOut", "ExecutionTimedOut", -1
            elif code == 0:
                inv.status, inv.details, inv.code = "Success", "Success", 0
            else:
                inv.status, inv.details, inv.code = "Failed", "Failed", code if code > 0 else 128 - code
        log.info("instance %s: command %s %s (%s)", inv.instance_id, inv.command_id, inv.status, inv.code)

    def close(self) -> None:
        for inv in list(self.invocations.values()):
            self._kill(inv)


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"
