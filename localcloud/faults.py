"""The WSGI layer in front of moto: throttling and 5xx answers at the configured rates,
each in the error format of the service it stands in for, and the control API."""

from __future__ import annotations

import random
import re
import uuid
from typing import Callable, Iterable

from .settings import LOCK, SETTINGS

CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
QUERY_SERVICES = {"elasticloadbalancing", "rds", "autoscaling", "iam", "sts"}
JSON_SERVICES = {"secretsmanager", "ssm"}


def service_of(environ: dict) -> str | None:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = CREDENTIAL_SCOPE.search(auth)
    if m:
        return m.group(1)
    query = environ.get("QUERY_STRING", "")
    m = re.search(r"X-Amz-Credential=[^&]*?%2F([a-z0-9-]+)%2Faws4_request", query)
    return m.group(1) if m else None


def error_response(service: str, throttle: bool) -> tuple[str, str, bytes]:
    rid = str(uuid.uuid4())
    if service == "ec2":
        code = "RequestLimitExceeded" if throttle else "InternalError"
        status = "503 Service Unavailable" if throttle else "500 Internal Server Error"
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>injected by the local cloud"
            f"</Message></Error></Errors><RequestID>{rid}</RequestID></Response>"
        )
        return status, "text/xml", body.encode()
    if service == "s3":
        code = "SlowDown" if throttle else "InternalError"
        status = "503 Slow Down" if throttle else "500 Internal Server Error"
        body = f"<Error><Code>{code}</Code><Message>injected by the local cloud</Message><RequestId>{rid}</RequestId></Error>"
        return status, "application/xml", body.encode()
    if service in JSON_SERVICES:
        code = "ThrottlingException" if throttle else "InternalFailure"
        status = "400 Bad Request" if throttle else "500 Internal Server Error"
        body = f'{{"__type":"{code}","message":"injected by the local cloud"}}'
        return status, "application/x-amz-json-1.1", body.encode()
    code = "Throttling" if throttle else "InternalFailure"
    status = "400 Bad Request" if throttle else "500 Internal Server Error"
    kind = "Sender" if throttle else "Receiver"
    body = (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>injected by the local cloud"
        f"</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"
    )
    return status, "text/xml", body.encode()


class Faults:
    def __init__(self, moto_app: Callable, control: Callable):
        self.moto_app = moto_app
        self.control = control
        self.injected = {"throttle": 0, "error": 0}

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_localcloud"):
            return self.control(environ, start_response)
        if not path.startswith("/moto-api"):
            service = service_of(environ)
            roll = random.random()
            throttle = roll < SETTINGS.throttle_rate
            error = not throttle and roll < SETTINGS.throttle_rate + SETTINGS.error_rate
            if service and (throttle or error):
                self.injected["throttle" if throttle else "error"] += 1
                status, kind, body = error_response(service, throttle)
                start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
                return [body]
        with LOCK:
            return list(self.moto_app(environ, start_response))
