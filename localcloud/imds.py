"""The instance metadata service of one instance, at 169.254.169.254:80 inside its network
namespace. It answers from `metadata.json` in the instance's folder (the cloud rewrites it
when credentials rotate), and requires IMDSv2 session tokens when the launch template does.

Usage: python -m localcloud.imds INSTANCE_DIR
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKENS: dict[str, float] = {}


def metadata(box: str) -> dict:
    with open(os.path.join(box, "metadata.json")) as f:
        return json.load(f)


class Handler(BaseHTTPRequestHandler):
    box = ""

    def log_message(self, fmt: str, *args) -> None:  # quiet: the cloud logs what matters
        pass

    def reply(self, code: int, body: str, kind: str = "text/plain", headers: dict | None = None) -> None:
        data = body.encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token":
            return self.reply(404, "Not Found")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self.reply(400, "Bad Request: X-aws-ec2-metadata-token-ttl-seconds must be 1-21600")
        token = secrets.token_urlsafe(32)
        TOKENS[token] = time.time() + int(ttl)
        self.reply(200, token, headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl})

    def do_GET(self) -> None:
        md = metadata(self.box)
        token = self.headers.get("X-aws-ec2-metadata-token")
        if token is not None and TOKENS.get(token, 0) < time.time():
            return self.reply(401, "Unauthorized")
        if md.get("imdsv2_required") and token is None:
            return self.reply(401, "Unauthorized")
        path = self.path.split("?")[0].rstrip("/")
        role = md.get("role")
        if path.startswith("/latest/meta-data/iam/") and time.time() < float(md.get("credentials_at") or 0):
            # As on EC2 before the instance profile's credentials exist.
            return self.reply(404, "Not Found")
        answers = {
            "/latest/meta-data/instance-id": md["instance_id"],
            "/latest/meta-data/local-ipv4": md["private_ip"],
            "/latest/meta-data/placement/region": md["region"],
            "/latest/meta-data/placement/availability-zone": md["availability_zone"],
            "/latest/meta-data/iam/security-credentials": role or None,
            "/latest/user-data": md.get("user_data"),
            "/latest/dynamic/instance-identity/document": json.dumps(
                {
                    "instanceId": md["instance_id"],
                    "region": md["region"],
                    "availabilityZone": md["availability_zone"],
                    "accountId": md["account_id"],
                    "privateIp": md["private_ip"],
                }
            ),
        }
        if role and path == f"/latest/meta-data/iam/security-credentials/{role}":
            return self.reply(200, json.dumps(md["credentials"]), "application/json")
        answer = answers.get(path)
        if answer is None:
            return self.reply(404, "Not Found")
        self.reply(200, answer)


def main() -> None:
    Handler.box = sys.argv[1]
    server = ThreadingHTTPServer(("169.254.169.254", 80), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
