"""Addresses and network namespaces. Everything lives on one interface per local cloud
(`lc<N>`, a veth pair since this kernel may lack the dummy driver) in 198.18.<N>.0/24 (RFC 2544's benchmarking range, never routed), plus a
network namespace and veth pair per instance. Nothing here sends traffic anywhere but to
these addresses."""

from __future__ import annotations

import subprocess
import threading

SERVICE_NET = "198.18.{n}.0/24"
IMDS_ADDRESS = "169.254.169.254"


class NetError(RuntimeError):
    pass


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and out.returncode != 0:
        raise NetError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out


class Network:
    """One local cloud's addresses: the endpoint, load balancers and databases."""

    def __init__(self, n: int):
        self.n = n
        self.dummy = f"lc{n}"
        self.endpoint_ip = f"198.18.{n}.1"
        self._lock = threading.Lock()
        self._next = {"balancer": 10, "database": 100}
        self._veth = 0

    @classmethod
    def claim(cls) -> "Network":
        """Take the first free index (its dummy interface is the claim)."""
        for n in range(0, 64):
            if ip("link", "add", f"lc{n}", "type", "veth", "peer", "name", f"lc{n}x", check=False).returncode == 0:
                net = cls(n)
                ip("link", "set", net.dummy, "up")
                ip("link", "set", f"{net.dummy}x", "up")
                ip("addr", "add", f"{net.endpoint_ip}/32", "dev", net.dummy)
                return net
        raise NetError("no free local cloud index (lc0..lc63 all exist): run `python -m localcloud cleanup`")

    def allocate(self, kind: str) -> str:
        with self._lock:
            host = self._next[kind]
            limit = 99 if kind == "balancer" else 250
            if host > limit:
                raise NetError(f"out of {kind} addresses")
            self._next[kind] = host + 1
        address = f"198.18.{self.n}.{host}"
        ip("addr", "add", f"{address}/32", "dev", self.dummy)
        return address

    def release(self, address: str) -> None:
        ip("addr", "del", f"{address}/32", "dev", self.dummy, check=False)

    def instance_netns(self, instance_id: str, private_ip: str) -> tuple[str, str, str]:
        """A namespace whose eth0 has the instance's private address (as EC2 reports it)
        and a link address unique on this host (stacks' VPCs may overlap), reaching only
        this cloud's service addresses (no default route) and its own metadata service.
        Returns the namespace, the host end of its veth, and the link address."""
        ns = f"lc{self.n}-{instance_id}"
        with self._lock:
            self._veth += 1
            k = self._veth
        if k > 250:
            raise NetError("out of instance link addresses (250 instances per local cloud run)")
        link = f"198.19.{self.n}.{k}"
        host_end, guest_end = f"lc{self.n}h{k}", f"lc{self.n}g{k}"
        ip("netns", "add", ns)
        ip("link", "add", host_end, "type", "veth", "peer", "name", guest_end)
        ip("link", "set", guest_end, "netns", ns)
        ip("-n", ns, "link", "set", guest_end, "name", "eth0")
        ip("-n", ns, "addr", "add", f"{private_ip}/32", "dev", "eth0")
        ip("-n", ns, "addr", "add", f"{link}/32", "dev", "eth0")
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "addr", "add", f"{IMDS_ADDRESS}/32", "dev", "lo")
        ip("-n", ns, "route", "add", SERVICE_NET.format(n=self.n), "dev", "eth0", "src", link)
        ip("link", "set", host_end, "up")
        ip("route", "replace", f"{link}/32", "dev", host_end, "src", self.endpoint_ip)
        return ns, host_end, link

    def remove_instance_netns(self, ns: str, host_end: str, link: str) -> None:
        ip("route", "del", f"{link}/32", "dev", host_end, check=False)
        ip("link", "del", host_end, check=False)
        ip("netns", "del", ns, check=False)

    def close(self) -> None:
        ip("link", "del", self.dummy, check=False)


def cleanup_all() -> list[str]:
    """Remove what dead local clouds left behind (namespaces, veths, dummies)."""
    removed = []
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith("lc") and "-i-" in name:
            ip("netns", "del", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith("lc") and name[2:].split("h")[0].split("g")[0].rstrip("x").isdigit():
                ip("link", "del", name, check=False)
                removed.append(name)
    return removed
