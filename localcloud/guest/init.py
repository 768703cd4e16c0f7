"""An instance's first process (PID 1 of its own PID namespace, inside its own mount and
network namespaces). It builds the instance's root as an overlay of the host's (so the
instance sees an ordinary Linux, with its own writable layer), installs the shims EC2's
image would have in place of systemd and the package manager, runs the user-data once
as cloud-init does, and then stays as init: it reaps orphans and, on SIGTERM (the
instance being terminated), stops every unit the way systemd would before exiting.

Usage: init.py INSTANCE_DIR   (INSTANCE_DIR holds user-data, env, hosts; root/ is built here)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(*args: str) -> None:
    subprocess.run(args, check=True)


def build_root(box: str) -> str:
    upper, work, root = (os.path.join(box, d) for d in ("upper", "work", "root"))
    for d in (upper, work, root):
        os.makedirs(d, exist_ok=True)
    sh("mount", "--make-rprivate", "/")
    sh("mount", "-t", "overlay", "overlay", "-o", f"lowerdir=/,upperdir={upper},workdir={work}", root)
    sh("mount", "-t", "proc", "proc", f"{root}/proc")
    sh("mount", "--rbind", "/sys", f"{root}/sys")
    sh("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", f"{root}/dev")
    for dev in ("null", "zero", "full", "random", "urandom", "tty"):
        target = f"{root}/dev/{dev}"
        open(target, "a").close()
        sh("mount", "--bind", f"/dev/{dev}", target)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    os.makedirs(f"{root}/dev/pts", exist_ok=True)
    os.makedirs(f"{root}/dev/shm", exist_ok=True)
    sh("mount", "-t", "tmpfs", "tmpfs", f"{root}/dev/shm")
    sh("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", f"{root}/run")
    sh("mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", f"{root}/tmp")
    # What the image provides: systemd, the package manager, cloud-init's folders.
    for name in ("systemctl", "journalctl", "dnf", "yum"):
        target = f"{root}/usr/bin/{name}"
        shutil.copy(os.path.join(HERE, name if name != "yum" else "dnf"), target)
        os.chmod(target, 0o755)
    os.makedirs(f"{root}/etc/systemd/system", exist_ok=True)
    os.makedirs(f"{root}/var/lib/cloud/instance", exist_ok=True)
    os.makedirs(f"{root}/var/log/journal", exist_ok=True)
    shutil.copy(os.path.join(box, "hosts"), f"{root}/etc/hosts")
    # The AMI's public roots (the rig's stand-in for them, see pki.py).
    bundle = f"{root}/etc/ssl/certs/ca-certificates.crt"
    with open(os.path.join(box, "trust.pem"), "rb") as src, open(bundle, "ab") as dst:
        dst.write(b"\n" + src.read())
    # A separate copy the cloud rewrites when databases come and go (see rds.py).
    return root


def syslog(root: str) -> None:
    """/dev/log, as journald provides it: messages land in /var/log/messages."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(f"{root}/dev/log")
    os.chmod(f"{root}/dev/log", 0o666)
    out = open(f"{root}/var/log/messages", "ab", buffering=0)

    def pump() -> None:
        while True:
            data = sock.recv(65536)
            out.write(data.rstrip(b"\n") + b"\n")

    threading.Thread(target=pump, daemon=True).start()


def stop_units() -> None:
    """systemd's shutdown: SIGTERM to every unit, wait for each, SIGKILL stragglers."""
    subprocess.run(["/usr/bin/systemctl", "stop", "--all"], check=False)


def main() -> None:
    box = sys.argv[1]
    with open(os.path.join(box, "env.json")) as f:
        platform_env = json.load(f)
    root = build_root(box)
    shutil.copy(os.path.join(box, "user-data"), f"{root}/var/lib/cloud/instance/user-data.txt")
    os.chmod(f"{root}/var/lib/cloud/instance/user-data.txt", 0o700)
    with open(f"{root}/run/platform.env", "w") as f:
        json.dump(platform_env, f)
    syslog(root)
    os.chroot(root)
    os.chdir("/")

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        **platform_env,
    }
    # cloud-init runs a user-data script once, as root, output into cloud-init-output.log.
    with open("/var/log/cloud-init-output.log", "ab", buffering=0) as log:
        log.write(f"Cloud-init: running user-data at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode())
        boot = subprocess.Popen(
            ["/var/lib/cloud/instance/user-data.txt"], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd="/"
        )
        while boot.poll() is None and not stopping.is_set():
            time.sleep(0.1)
        code = boot.poll()
        log.write(f"Cloud-init: user-data finished with exit code {code}\n".encode())
    with open("/run/boot-finished", "w") as f:
        f.write(str(code))

    # Init: reap orphans until told to shut down.
    while not stopping.is_set():
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if pid == 0:
            stopping.wait(0.2)
    stop_units()


if __name__ == "__main__":
    main()
