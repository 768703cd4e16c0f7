"""Instances that really boot. For every instance moto reports running, a sandbox: its
own network namespace holding its private address, its own PID and mount namespaces with
an overlay root, its metadata service, and its user-data run byte for byte by guest/init.py.
Terminating the instance shuts the sandbox down: SIGTERM (init stops the units, as
systemd would), then SIGKILL after the grace period."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .net import Network
from .settings import SETTINGS

log = logging.getLogger("localcloud.instances")
GUEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest")
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Sandbox:
    instance_id: str
    private_ip: str
    box: str
    boot_at: float
    ns: str = ""
    host_end: str = ""
    link_ip: str = ""
    # The network namespace's inode: every process of the instance lives in it.
    netns_ino: int = 0
    init: subprocess.Popen | None = None
    imds: subprocess.Popen | None = None
    state: str = "pending"  # pending, booting, running, dead, stopped
    started: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def file(self, path: str) -> str:
        return os.path.join(self.box, "upper", path.lstrip("/"))

    def tail(self, path: str, lines: int = 40) -> str:
        try:
            with open(self.file(path), "rb") as f:
                data = f.read()[-64 * 1024 :]
            return "\n".join(data.decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def user_data(instance: Any) -> bytes:
    """The user-data as given to RunInstances (moto keeps it base64-encoded)."""
    ud = instance.user_data
    if not ud:
        return b""
    if hasattr(ud, "as_bytes"):
        return base64.b64decode(ud.as_bytes())
    return base64.b64decode(ud[0])


class Instances:
    def __init__(self, cloud: Any, net: Network, state_dir: str):
        self.cloud = cloud
        self.net = net
        self.dir = os.path.join(state_dir, "instances")
        os.makedirs(self.dir, exist_ok=True)
        self.boxes: dict[str, Sandbox] = {}

    # Called by the reconciler with moto's view (under the moto lock), fast.
    def observe(self, instance: Any, metadata: dict) -> None:
        sandbox = self.boxes.get(instance.id)
        if instance.state in ("running", "pending") and sandbox is None:
            box = os.path.join(self.dir, instance.id)
            os.makedirs(box, exist_ok=True)
            with open(os.path.join(box, "user-data"), "wb") as f:
                f.write(user_data(instance))
            os.chmod(os.path.join(box, "user-data"), 0o700)
            sandbox = Sandbox(instance.id, instance.private_ip, box, time.time() + SETTINGS.delays["instance_boot"])
            self.boxes[instance.id] = sandbox
            log.info("instance %s (%s): pending, boots in %.0fs", instance.id, instance.private_ip, SETTINGS.delays["instance_boot"])
        if sandbox is not None:
            self.write_metadata(sandbox, metadata)
            if instance.state in ("terminated", "shutting-down", "stopped", "stopping") and sandbox.state in (
                "pending",
                "booting",
                "running",
                "dead",
            ):
                sandbox.state = "stopping"
                threading.Thread(target=self.shutdown, args=(sandbox,), daemon=True).start()

    def write_metadata(self, sandbox: Sandbox, metadata: dict) -> None:
        path = os.path.join(sandbox.box, "metadata.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(metadata, f)
        os.replace(tmp, path)

    def due(self) -> list[Sandbox]:
        now = time.time()
        return [s for s in self.sandboxes() if s.state == "pending" and s.boot_at <= now]

    def boot(self, sandbox: Sandbox, hosts: str) -> None:
        with sandbox.lock:
            if sandbox.state != "pending":
                return
            sandbox.state = "booting"
        try:
            sandbox.ns, sandbox.host_end, sandbox.link_ip = self.net.instance_netns(sandbox.instance_id, sandbox.private_ip)
            sandbox.netns_ino = os.stat(f"/run/netns/{sandbox.ns}").st_ino
            with open(os.path.join(sandbox.box, "hosts"), "w") as f:
                f.write(hosts)
            # The image's trust store holds the public roots (pki.py: the rig's "public" CA).
            with open(os.path.join(sandbox.box, "trust.pem"), "wb") as f:
                f.write(self.cloud.pki.public_roots())
            with open(os.path.join(sandbox.box, "env.json"), "w") as f:
                json.dump({"AWS_ENDPOINT_URL": self.cloud.instance_endpoint}, f)
            logs = open(os.path.join(sandbox.box, "sandbox.log"), "ab")
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": PACKAGE_ROOT}
            sandbox.imds = subprocess.Popen(
                ["ip", "netns", "exec", sandbox.ns, sys.executable, "-m", "localcloud.imds", sandbox.box],
                stdout=logs,
                stderr=logs,
                env=env,
                start_new_session=True,
            )
            sandbox.init = subprocess.Popen(
                [
                    "ip", "netns", "exec", sandbox.ns,
                    "unshare", "--mount", "--pid", "--fork", "--kill-child",
                    "/usr/bin/python3", os.path.join(GUEST, "init.py"), sandbox.box,
                ],
                stdout=logs,
                stderr=logs,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                start_new_session=True,
            )
            sandbox.started = time.time()
            sandbox.state = "running"
            log.info("instance %s: booted in namespace %s", sandbox.instance_id, sandbox.ns)
        except Exception as e:  # a failed boot is a dead instance, as on EC2
            log.error("instance %s: could not boot: %s", sandbox.instance_id, e)
            sandbox.state = "dead"

    def check(self) -> None:
        """An init that exited on its own is an instance that died (kernel panic, power)."""
        for s in self.sandboxes():
            if s.state == "running" and s.init is not None and s.init.poll() is not None:
                log.warning("instance %s: its init exited (%s): the instance is dead", s.instance_id, s.init.returncode)
                s.state = "dead"

    def refresh_hosts(self, hosts: str) -> None:
        for s in self.sandboxes():
            if s.state == "running":
                path = s.file("/etc/hosts")
                try:
                    with open(path) as f:
                        if f.read() == hosts:
                            continue
                    with open(path, "w") as f:
                        f.write(hosts)
                except OSError:
                    pass

    def kill(self, instance_id: str) -> bool:
        """Pull the plug: everything in the sandbox dies at once, nothing is told. An
        instance still pending never boots."""
        s = self.boxes.get(instance_id)
        if s is None:
            return False
        with s.lock:
            if s.state == "pending":
                s.state = "dead"
                return True
        if s.init is None:
            return False
        self._signal(s, signal.SIGKILL)
        s.state = "dead"
        return True

    def freeze(self, instance_id: str, pattern: str) -> int:
        """Wedge a program in the instance (SIGSTOP every process whose command line holds
        `pattern`): it is still there, holding its port, and answers nothing. Returns how
        many processes were stopped."""
        s = self.boxes.get(instance_id)
        if s is None or not s.netns_ino:
            return 0
        stopped = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino != s.netns_ino:
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
                if pattern in cmdline:
                    os.kill(int(pid), signal.SIGSTOP)
                    stopped += 1
            except OSError:
                continue
        return stopped

    def _signal(self, s: Sandbox, sig: int) -> None:
        for p in (s.init, s.imds):
            if p is not None and p.poll() is None:
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    pass

    def _guest_init_pid(self, s: Sandbox) -> int | None:
        """The guest's init (PID 1 inside), seen from here: unshare's child."""
        if s.init is None:
            return None
        try:
            for task in os.listdir(f"/proc/{s.init.pid}/task"):
                with open(f"/proc/{s.init.pid}/task/{task}/children") as f:
                    for pid in f.read().split():
                        return int(pid)
        except OSError:
            return None
        return None

    def shutdown(self, s: Sandbox) -> None:
        with s.lock:
            init = self._guest_init_pid(s) if s.init is not None and s.init.poll() is None else None
            if init:
                try:
                    os.kill(init, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                deadline = time.time() + SETTINGS.shutdown_grace
                while time.time() < deadline and s.init.poll() is None:
                    time.sleep(0.1)
            self._signal(s, signal.SIGKILL)
            for p in (s.init, s.imds):
                if p is not None:
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        pass
            if s.ns:
                self.net.remove_instance_netns(s.ns, s.host_end, s.link_ip)
                # With nothing left inside, the namespace is gone and its inode number may
                # be reused by another instance's: stop counting by it. (While a process
                # survives, it keeps the namespace, and its inode, alive.)
                if self.processes_of(s) == 0:
                    s.netns_ino = 0
            s.state = "stopped"
            log.info("instance %s: stopped", s.instance_id)

    def close(self) -> None:
        threads = []
        for s in self.sandboxes():
            if s.state in ("pending", "booting", "running", "dead", "stopping"):
                s.state = "stopping"
                t = threading.Thread(target=self.shutdown, args=(s,), daemon=True)
                t.start()
                threads.append(t)
        for t in threads:
            t.join(timeout=SETTINGS.shutdown_grace + 15)
        shutil.rmtree(self.dir, ignore_errors=True)

    def sandboxes(self) -> list[Sandbox]:
        """A copy of the instances: the control API and the sync loop read them from other
        threads while a launch adds one (a dict changed during iteration raises)."""
        return list(self.boxes.values())

    def running_processes(self) -> int:
        return sum(1 for s in self.sandboxes() for p in (s.init, s.imds) if p is not None and p.poll() is None)

    def processes_of(self, s: Sandbox) -> int:
        """Processes still alive in the instance's network namespace, counted from /proc
        (not from our own bookkeeping), so a test can check that terminating stops all."""
        if not s.netns_ino:
            return 0
        n = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino == s.netns_ino:
                    n += 1
            except OSError:
                continue
        return n
