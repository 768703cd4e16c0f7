"""Load balancers that forward. Each active ALB gets a local address; each of its
listeners serves there and sends every request (not connection) round-robin to the
serving targets of its forward action's target group, as an ALB does: healthy ones,
all registered ones when none is healthy, 503 when there is none, 502 when the target
fails, X-Forwarded-For/-Proto/-Port set. A draining target gets no new requests while
requests already with it finish. Redirect actions answer with their redirect, fixed-response
actions with their status, type and body. An HTTPS listener terminates TLS with a
certificate for its ACM certificate's names, signed by the rig's public CA (pki.py), at
the minimum TLS version of its security policy; X-Forwarded-Proto says which it was."""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger("localcloud.balancer")

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
}


@dataclass
class Balancer:
    arn: str
    name: str
    dns_name: str
    address: str
    runners: dict[int, web.AppRunner] = field(default_factory=dict)
    # port -> (certificate ARN, security policy) its TLS was set up with.
    tls: dict[int, tuple[str, str]] = field(default_factory=dict)
    counter: itertools.count = field(default_factory=itertools.count)
    requests: int = 0
    failures: int = 0


class Balancers:
    def __init__(self, cloud: Any):
        self.cloud = cloud
        self.by_arn: dict[str, Balancer] = {}
        self.session: aiohttp.ClientSession | None = None
        self._gone: list[str] = []

    def deleted(self, arn: str) -> None:
        self._gone.append(arn)

    def mapping(self) -> list[dict]:
        return [
            {"name": b.name, "dns_name": b.dns_name, "address": b.address, "ports": sorted(list(b.runners)),
             "requests": b.requests, "failures": b.failures}
            for b in list(self.by_arn.values())
        ]

    async def sync(self, balancers: list[Any], listeners: dict[str, list[Any]]) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=None, sock_read=60, sock_connect=5),
                auto_decompress=False,
            )
        for arn in self._gone:
            await self._remove(arn)
        self._gone.clear()
        live = set()
        for lb in balancers:
            if lb.state != "active":
                continue
            live.add(lb.arn)
            b = self.by_arn.get(lb.arn)
            if b is None:
                b = Balancer(lb.arn, lb.name, lb.dns_name, self.cloud.net.allocate("balancer"))
                self.by_arn[lb.arn] = b
                log.info("load balancer %s: %s -> %s", lb.name, lb.dns_name, b.address)
            ports = {int(l.port): l for l in listeners.get(lb.arn, [])}
            for port, listener in ports.items():
                tls = self._tls_of(listener)
                if port in b.runners and b.tls.get(port) != tls:
                    await b.runners.pop(port).cleanup()  # another certificate or protocol
                if port not in b.runners:
                    context = self._context(tls) if tls is not None else None
                    if tls is not None and context is None:
                        continue  # an HTTPS listener without a certificate serves nothing
                    b.runners[port] = await self._serve(b, port, listener.arn, context)
                    if tls is None:
                        b.tls.pop(port, None)
                    else:
                        b.tls[port] = tls
            for port in [p for p in b.runners if p not in ports]:
                await b.runners.pop(port).cleanup()
        for arn in [a for a in self.by_arn if a not in live]:
            await self._remove(arn)

    async def _remove(self, arn: str) -> None:
        b = self.by_arn.pop(arn, None)
        if b is None:
            return
        for runner in b.runners.values():
            await runner.cleanup()
        self.cloud.net.release(b.address)

    @staticmethod
    def _tls_of(listener: Any) -> tuple[str, str] | None:
        if (listener.protocol or "").upper() != "HTTPS":
            return None
        arn = listener.certificate or (listener.certificates[0] if listener.certificates else "")
        return str(arn or ""), str(listener.ssl_policy or "")

    def _context(self, tls: tuple[str, str]) -> ssl.SSLContext | None:
        """A server context for an ACM certificate: a key and certificate for its names,
        signed by the public CA instances and tests trust (none: it has no names)."""
        from .acm import certificate_names

        arn, policy = tls
        names = certificate_names(arn)
        if not names:
            return None
        key, crt = self.cloud.pki.sign(self.cloud.pki.public_ca, "acm-" + arn.rsplit("/", 1)[-1], names[0])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # ELBSecurityPolicy-TLS13-1-3-*: TLS 1.3 only; the others this stack uses: 1.2 and up.
        context.minimum_version = ssl.TLSVersion.TLSv1_3 if "TLS13-1-3" in policy else ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(crt, key)
        context.set_alpn_protocols(["http/1.1"])
        return context

    async def _serve(self, b: Balancer, port: int, listener_arn: str, context: ssl.SSLContext | None = None) -> web.AppRunner:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.forward(b, port, listener_arn, request)

        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, b.address, port, backlog=1024, ssl_context=context).start()
        return runner

    async def forward(self, b: Balancer, port: int, listener_arn: str, request: web.Request) -> web.StreamResponse:
        b.requests += 1
        action = self.cloud.listener_action(listener_arn)
        if action is None:
            return self._error(b, 503, "503 Service Temporarily Unavailable (no listener action)")
        if action["Type"] == "redirect":
            cfg = action.get("RedirectConfig", {})
            proto = cfg.get("Protocol", "#{protocol}").replace("#{protocol}", "https" if request.secure else "http").lower()
            to_port = cfg.get("Port", "#{port}").replace("#{port}", str(port))
            location = f"{proto}://{request.host.split(':')[0]}:{to_port}{request.path_qs}"
            code = 301 if cfg.get("StatusCode", "HTTP_301") == "HTTP_301" else 302
            raise web.HTTPFound(location) if code == 302 else web.HTTPMovedPermanently(location)
        if action["Type"] == "fixed-response":
            cfg = action.get("FixedResponseConfig", {})
            return web.Response(
                status=int(cfg.get("StatusCode", "503")),
                body=cfg.get("MessageBody", "").encode(),
                content_type=cfg.get("ContentType", "text/plain"),
            )
        targets = self.cloud.health.serving(action["TargetGroupArn"])
        if not targets:
            return self._error(b, 503, "503 Service Temporarily Unavailable")
        # A target was chosen: the request counts in the group's RequestCount (scaling.py).
        self.cloud.scaling.count(action["TargetGroupArn"])
        target = targets[next(b.counter) % len(targets)]
        address = self.cloud.target_address(target.id)
        if address is None:
            return self._error(b, 502, "502 Bad Gateway")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        peer = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{forwarded}, {peer}" if forwarded else peer
        headers["X-Forwarded-Proto"] = "https" if request.secure else "http"
        headers["X-Forwarded-Port"] = str(port)
        headers["Host"] = request.host
        url = f"http://{address}:{target.port}{request.path_qs}"
        body = request.content if request.body_exists else None
        try:
            async with self.session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False
            ) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for k, v in upstream.headers.items():
                    if k.lower() not in HOP_BY_HOP:
                        response.headers.add(k, v)
                if upstream.headers.get("Content-Length") is not None:
                    response.content_length = int(upstream.headers["Content-Length"])
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(64 * 1024):
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionResetError) as e:
            log.warning("load balancer %s: target %s failed: %s", b.name, target.id, e)
            return self._error(b, 502, "502 Bad Gateway")

    def _error(self, b: Balancer, status: int, text: str) -> web.Response:
        b.failures += 1
        return web.Response(status=status, text=f"<html><body><h1>{text}</h1></body></html>", content_type="text/html")

    async def close(self) -> None:
        for arn in list(self.by_arn):
            await self._remove(arn)
        if self.session is not None:
            await self.session.close()
