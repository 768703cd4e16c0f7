"""The rig's certificates. AWS signs RDS servers with the RDS certificate authorities and
publishes their bundle at https://truststore.pki.rds.amazonaws.com/<region>/<region>-bundle.pem
(a site with a public certificate). Here:

- an "RDS" CA signs every database server's certificate (CN and SAN: its endpoint name);
- a "public" CA, added to every instance's trust store as the public roots are on an AMI,
  signs the certificate of the trust store site, which the endpoint's address serves on
  port 443 and every instance resolves (its /etc/hosts), so the boot script fetches the
  bundle from the real URL over verified HTTPS."""

from __future__ import annotations

import logging
import os
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("localcloud.pki")
TRUSTSTORE_HOST = "truststore.pki.rds.amazonaws.com"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Pki:
    def __init__(self, state_dir: str):
        self.lock = threading.Lock()  # openssl's serial file is shared
        self.dir = os.path.join(state_dir, "pki")
        os.makedirs(self.dir, exist_ok=True)
        self.rds_ca = self._ca("rds-ca", "localcloud RDS root CA")
        self.public_ca = self._ca("public-ca", "localcloud public root CA")
        self.truststore_cert = self.sign(self.public_ca, "truststore", TRUSTSTORE_HOST)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _ca(self, name: str, subject: str) -> tuple[str, str]:
        key, crt = self.path(f"{name}.key"), self.path(f"{name}.crt")
        if not os.path.exists(crt):
            _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3", "-subj", f"/CN={subject}",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                     "-keyout", key, "-out", crt)
        return key, crt

    def sign(self, ca: tuple[str, str], name: str, hostname: str, directory: str | None = None) -> tuple[str, str]:
        """A server key and certificate for `hostname`, signed by `ca`."""
        d = directory or self.dir
        with self.lock:
            return self._sign(ca, name, hostname, d)

    def _sign(self, ca: tuple[str, str], name: str, hostname: str, d: str) -> tuple[str, str]:
        key, csr, crt, ext = (os.path.join(d, f"{name}.{x}") for x in ("key", "csr", "crt", "ext"))
        with open(ext, "w") as f:
            f.write(f"subjectAltName=DNS:{hostname}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hostname}", "-keyout", key, "-out", csr)
        _openssl("x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial", "-days", "2",
                 "-extfile", ext, "-out", crt)
        os.unlink(csr)
        os.unlink(ext)
        os.chmod(key, 0o600)
        return key, crt

    def rds_bundle(self) -> bytes:
        with open(self.rds_ca[1], "rb") as f:
            return f.read()

    def public_roots(self) -> bytes:
        with open(self.public_ca[1], "rb") as f:
            return f.read()

    def serve_truststore(self, address: str) -> ThreadingHTTPServer:
        """https://truststore.pki.rds.amazonaws.com/ on `address`:443."""
        bundle = self.rds_bundle()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                ok = len(parts) == 2 and parts[1] == f"{parts[0]}-bundle.pem"
                body = bundle if ok else b"Not Found"
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/x-pem-file" if ok else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer((address, 443), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.truststore_cert[1], self.truststore_cert[0])
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        log.info("RDS trust store at https://%s/ (%s:443)", TRUSTSTORE_HOST, address)
        return server
