"""RDS instances as real PostgreSQL servers. Each DB instance gets its own cluster
(initdb with the instance's master user, password and database name), TLS required as
with rds.force_ssl, listening on an address of its own; the endpoint name RDS reports
resolves to that address inside every instance (its /etc/hosts). The instance is
`creating` until the creation delay has passed and the server accepts connections.
A snapshot is a `pg_dump` of the instance's database, taken when RDS takes it; an
instance restored from a snapshot loads that dump before it becomes `available`.
Point-in-time recovery: every `aws.pitr_interval` seconds each available instance's
database is dumped again (a restore point, labelled with the time the dump ended, so it
holds nothing later); RestoreDBInstanceToPointInTime loads the newest point at or before
the time asked for, and LatestRestorableTime is the newest point's. A rename
(ModifyDBInstance NewDBInstanceIdentifier) moves the server to its new endpoint name with
a certificate for it and restarts it, cutting its connections, as RDS reboots it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .settings import LOCK, SETTINGS

log = logging.getLogger("localcloud.rds")


def pg_bin() -> str:
    explicit = os.environ.get("PG_BIN")
    if explicit:
        return explicit
    base = "/usr/lib/postgresql"
    for version in sorted(os.listdir(base), reverse=True) if os.path.isdir(base) else []:
        candidate = os.path.join(base, version, "bin")
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql-15, or set PG_BIN")


def as_postgres(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        args = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *args]
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


@dataclass
class Server:
    identifier: str
    address: str
    hostname: str
    data: str
    db: Any
    state: str = "creating"  # creating, starting, available, rebooting, deleted
    restore_from: str | None = None  # a snapshot's (or a restore point's) dump to load
    # Restore points: (the time the dump ended, its path), oldest first.
    points: list[tuple[float, str]] = field(default_factory=list)


class Databases:
    def __init__(self, cloud: Any, state_dir: str):
        self.cloud = cloud
        self.dir = os.path.join(state_dir, "rds")
        os.makedirs(self.dir, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        os.chmod(self.dir, 0o755)
        self.servers: dict[str, Server] = {}
        self.bin = pg_bin()
        self.snapshots = os.path.join(self.dir, "snapshots")
        os.makedirs(self.snapshots, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.snapshots, "postgres")
        self.points_dir = os.path.join(self.dir, "points")
        os.makedirs(self.points_dir, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.points_dir, "postgres")
        # Instance id -> the dump it is being restored from (set around moto's restores).
        self.restoring: dict[str, str] = {}
        self._closing = False
        threading.Thread(target=self._points_loop, daemon=True).start()

    def created(self, db: Any) -> None:
        address = self.cloud.net.allocate("database")
        hostname = db.address if isinstance(db.address, str) else str(db.address)
        # A directory of its own, not named after the identifier alone: a renamed instance
        # keeps its data while a new one takes its old name.
        data = os.path.join(self.dir, f"{db.db_instance_identifier}-{uuid.uuid4().hex[:6]}")
        server = Server(db.db_instance_identifier, address, hostname, data, db)
        server.restore_from = self.restoring.get(server.identifier)
        self.servers[server.identifier] = server
        threading.Thread(target=self._start, args=(server,), daemon=True).start()

    def deleted(self, db: Any) -> None:
        server = self.servers.pop(db.db_instance_identifier, None)
        if server is not None:
            server.state = "deleted"
            threading.Thread(target=self._stop, args=(server,), daemon=True).start()

    def _dump_path(self, snapshot: str) -> str:
        return os.path.join(self.snapshots, f"{snapshot}.dump")

    def snapshot_dump(self, snapshot: str) -> str:
        return self._dump_path(snapshot)

    # ---- point-in-time recovery ------------------------------------------------------

    def _points_loop(self) -> None:
        while not self._closing:
            interval = float(SETTINGS.aws.get("pitr_interval", 0) or 0)
            time.sleep(interval if interval > 0 else 1.0)
            if interval <= 0:
                continue
            for server in list(self.servers.values()):
                if server.state == "available" and server.db.db_name:
                    self._point(server)

    def _point(self, server: Server) -> None:
        db = server.db
        path = os.path.join(self.points_dir, f"{os.path.basename(server.data)}-{time.time():.3f}.dump")
        out = as_postgres([f"{self.bin}/pg_dump", "-h", server.data, "-p", str(db.port), "-U", db.master_username, "-Fc", "-f", path, db.db_name])
        if out.returncode != 0:
            # Down for a reboot or being deleted: no point this time.
            if os.path.exists(path):
                os.unlink(path)
            return
        ended = time.time()
        window = float(SETTINGS.aws.get("pitr_window", 3600))
        with LOCK:
            server.points.append((ended, path))
            while len(server.points) > 1 and server.points[0][0] < ended - window:
                _, old = server.points.pop(0)
                try:
                    os.unlink(old)
                except FileNotFoundError:
                    pass

    def latest_restorable(self, identifier: str) -> float | None:
        server = self.servers.get(identifier)
        if server is None or not server.points:
            return None
        return server.points[-1][0]

    def point(self, identifier: str, when: float | None) -> str | None:
        """The newest restore point of the instance at or before `when` (None: the newest)."""
        server = self.servers.get(identifier)
        if server is None:
            return None
        candidates = [p for t, p in server.points if when is None or t <= when]
        return candidates[-1] if candidates else None

    def renamed(self, old: str, db: Any) -> None:
        """ModifyDBInstance with NewDBInstanceIdentifier: the server answers at its new
        endpoint name (a certificate for that name) after a restart, as RDS reboots it."""
        with LOCK:
            server = self.servers.pop(old, None)
            if server is None:
                return
            server.identifier = db.db_instance_identifier
            server.hostname = db.address if isinstance(db.address, str) else str(db.address)
            self.servers[server.identifier] = server
        threading.Thread(target=self._rename_restart, args=(server,), daemon=True).start()

    def _rename_restart(self, server: Server) -> None:
        if server.state != "available":
            return  # RDS renames only an available instance (patches.py refuses the others)
        with LOCK:
            server.db.status = "rebooting"
            server.state = "rebooting"
        try:
            key, crt = self.cloud.pki.sign(self.cloud.pki.rds_ca, "server", server.hostname, server.data)
            if os.geteuid() == 0:
                shutil.chown(key, "postgres")
                shutil.chown(crt, "postgres")
            out = as_postgres([f"{self.bin}/pg_ctl", "-D", server.data, "-l", os.path.join(server.data, "server.log"), "-m", "fast", "-w", "restart"])
            if out.returncode != 0:
                raise RuntimeError(out.stderr.strip() or out.stdout.strip())
            log.info("RDS %s: renamed, serving as %s", server.identifier, server.hostname)
        except Exception as e:
            log.error("RDS %s: restart after the rename failed: %s", server.identifier, e)
        with LOCK:
            if server.state != "deleted":
                server.db.status = "available"
                server.state = "available"

    def snapshot(self, identifier: str, snapshot: str) -> None:
        """Dump the instance's database as the snapshot's data (called as RDS takes it)."""
        server = self.servers.get(identifier)
        if server is None or server.state != "available" or not server.db.db_name:
            log.warning("RDS snapshot %s of %s: no running database to dump; it holds nothing", snapshot, identifier)
            return
        db = server.db
        out = as_postgres(
            [f"{self.bin}/pg_dump", "-h", server.data, "-p", str(db.port), "-U", db.master_username, "-Fc", "-f", self._dump_path(snapshot), db.db_name]
        )
        if out.returncode != 0:
            log.error("RDS snapshot %s of %s: pg_dump failed: %s", snapshot, identifier, out.stderr.strip())
        else:
            log.info("RDS snapshot %s of %s: %d bytes", snapshot, identifier, os.path.getsize(self._dump_path(snapshot)))

    def set_password(self, identifier: str, password: str) -> None:
        """ModifyDBInstance's MasterUserPassword: the server's master user gets it."""
        server = self.servers.get(identifier)
        if server is None or server.state != "available":
            return
        db = server.db
        quoted = password.replace("'", "''")
        out = as_postgres(
            [f"{self.bin}/psql", "-h", server.data, "-p", str(db.port), "-U", db.master_username, "-d", "postgres",
             "-v", "ON_ERROR_STOP=1", "-c", f"ALTER ROLE \"{db.master_username}\" PASSWORD '{quoted}'"]
        )
        if out.returncode != 0:
            log.error("RDS %s: could not set the master password: %s", identifier, out.stderr.strip())

    def forget_snapshot(self, snapshot: str) -> None:
        try:
            os.unlink(self._dump_path(snapshot))
        except FileNotFoundError:
            pass

    def hosts(self) -> dict[str, str]:
        return {s.hostname: s.address for s in list(self.servers.values())}

    def _start(self, server: Server) -> None:
        db = server.db
        started = time.time()
        try:
            with tempfile.NamedTemporaryFile("w", dir=self.dir, delete=False) as pw:
                pw.write(getattr(db, "_master_user_password", None) or "")
            if os.geteuid() == 0:
                shutil.chown(pw.name, "postgres")
            out = as_postgres(
                [
                    f"{self.bin}/initdb", "-D", server.data, "-U", db.master_username, f"--pwfile={pw.name}",
                    "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                ]
            )
            os.unlink(pw.name)
            if out.returncode != 0:
                raise RuntimeError(out.stderr.strip())
            # Signed by the rig's RDS CA, as RDS signs with its own (see pki.py).
            key, crt = self.cloud.pki.sign(self.cloud.pki.rds_ca, "server", server.hostname, server.data)
            os.chmod(key, 0o600)
            if os.geteuid() == 0:
                shutil.chown(key, "postgres")
                shutil.chown(crt, "postgres")
            with open(os.path.join(server.data, "pg_hba.conf"), "w") as f:
                f.write("local all all trust\nhostssl all all 0.0.0.0/0 scram-sha-256\nhost all all 0.0.0.0/0 reject\n")
            with open(os.path.join(server.data, "postgresql.conf"), "a") as f:
                f.write(
                    f"\nlisten_addresses = '{server.address}'\nport = {db.port}\nssl = on\n"
                    f"unix_socket_directories = '{server.data}'\nmax_connections = 100\nfsync = off\n"
                )
            # RDS takes minutes; the server comes up at the end of the creation delay.
            wait = SETTINGS.delays["rds_create"] - (time.time() - started)
            if wait > 0:
                time.sleep(wait)
            if server.state == "deleted":
                return
            server.state = "starting"
            out = as_postgres([f"{self.bin}/pg_ctl", "-D", server.data, "-l", os.path.join(server.data, "server.log"), "-w", "start"])
            if out.returncode != 0:
                raise RuntimeError(out.stderr.strip() or out.stdout.strip())
            if db.db_name:
                out = as_postgres(
                    [f"{self.bin}/createdb", "-h", server.data, "-p", str(db.port), "-U", db.master_username, "-O", db.master_username, db.db_name]
                )
                if out.returncode != 0:
                    raise RuntimeError(out.stderr.strip())
            if server.restore_from and db.db_name:
                if not os.path.exists(server.restore_from):
                    raise RuntimeError(f"the snapshot's data {server.restore_from} is missing")
                out = as_postgres(
                    [
                        f"{self.bin}/pg_restore", "-h", server.data, "-p", str(db.port), "-U", db.master_username,
                        "--no-owner", f"--role={db.master_username}", "-d", db.db_name, server.restore_from,
                    ]
                )
                if out.returncode != 0:
                    raise RuntimeError("pg_restore: " + out.stderr.strip())
                log.info("RDS %s: restored from %s", server.identifier, os.path.basename(server.restore_from))
            with LOCK:
                if server.state != "deleted":
                    db.status = "available"
                    server.state = "available"
            log.info("RDS %s: available at %s:%s after %.1fs", server.identifier, server.address, db.port, time.time() - started)
        except Exception as e:
            log.error("RDS %s: could not start: %s", server.identifier, e)
            with LOCK:
                db.status = "failed"

    def outage(self, identifier: str, seconds: float) -> bool:
        """A maintenance reboot: the server refuses connections for `seconds` (its open
        connections are cut), RDS reports `rebooting`, then it serves again."""
        server = self.servers.get(identifier)
        if server is None or server.state != "available":
            return False
        threading.Thread(target=self._outage, args=(server, seconds), daemon=True).start()
        return True

    def _outage(self, server: Server, seconds: float) -> None:
        with LOCK:
            server.db.status = "rebooting"
            server.state = "rebooting"
        log.info("RDS %s: down for %.0fs", server.identifier, seconds)
        as_postgres([f"{self.bin}/pg_ctl", "-D", server.data, "-m", "immediate", "-w", "stop"])
        time.sleep(seconds)
        if server.state == "deleted":
            return
        out = as_postgres([f"{self.bin}/pg_ctl", "-D", server.data, "-l", os.path.join(server.data, "server.log"), "-w", "start"])
        if out.returncode != 0:
            log.error("RDS %s: could not restart: %s", server.identifier, out.stderr.strip())
        with LOCK:
            if server.state != "deleted":
                server.db.status = "available"
                server.state = "available"
        log.info("RDS %s: available again", server.identifier)

    def _stop(self, server: Server) -> None:
        if os.path.exists(os.path.join(server.data, "postmaster.pid")):
            as_postgres([f"{self.bin}/pg_ctl", "-D", server.data, "-m", "fast", "-w", "stop"])
        shutil.rmtree(server.data, ignore_errors=True)
        with LOCK:
            points, server.points = server.points, []
        for _, path in points:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.cloud.net.release(server.address)

    def close(self) -> None:
        self._closing = True
        for server in list(self.servers.values()):
            server.state = "deleted"
            self._stop(server)
        self.servers.clear()
