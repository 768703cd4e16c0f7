"""The WSGI front of the local cloud, in front of moto. Each AWS request goes through, in
order: faults asked for by a test (`POST /_localcloud/faults`), throttling and 5xx answers
at the configured rates, request validation (validate.py), eventual consistency
(consistency.py) and client tokens (tokens.py); then moto; then, for a write, perhaps a
lost answer: applied, but the connection is closed before the answer is sent, as when a
response times out on its way back. Every error is in the service's own format."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from . import ssm, validate, wire
from .consistency import Backends, Consistency, Refusal, Stale
from .settings import LOCK, SETTINGS
from .tokens import Mismatch, Tokens

log = logging.getLogger("localcloud.faults")
QUERY_SERVICES = {"elasticloadbalancing", "rds", "autoscaling", "iam", "sts"}
JSON_SERVICES = {"secretsmanager", "ssm", "acm", "logs"}
REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 500: "Internal Server Error", 503: "Service Unavailable"}


def error_response(service: str, code: str, message: str, status: int) -> tuple[str, str, bytes]:
    """An error as `service` (its signing name) sends it: (status line, content type, body)."""
    rid = str(uuid.uuid4())
    line = f"{status} {REASONS.get(status, 'Error')}"
    message = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if service == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}"
            f"</Message></Error></Errors><RequestID>{rid}</RequestID></Response>"
        )
        return line, "text/xml", body.encode()
    if service == "s3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{rid}</RequestId></Error>"
        return line, "application/xml", body.encode()
    if service in JSON_SERVICES:
        return line, "application/x-amz-json-1.1", f'{{"__type":"{code}","message":"{message}"}}'.encode()
    kind = "Sender" if status < 500 else "Receiver"
    body = (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}"
        f"</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"
    )
    return line, "text/xml", body.encode()


def injected(service: str, throttle: bool) -> tuple[str, str, bytes]:
    if service == "ec2":
        return error_response(service, "RequestLimitExceeded" if throttle else "InternalError", "injected by the local cloud", 503 if throttle else 500)
    if service == "s3":
        return error_response(service, "SlowDown" if throttle else "InternalError", "injected by the local cloud", 503 if throttle else 500)
    if service in JSON_SERVICES:
        return error_response(service, "ThrottlingException" if throttle else "InternalFailure", "injected by the local cloud", 400 if throttle else 500)
    return error_response(service, "Throttling" if throttle else "InternalFailure", "injected by the local cloud", 400 if throttle else 500)


@dataclass
class Rule:
    """A fault a test asked for: `operation` (`ec2:CreateVpc`, or `*`: every write when
    losing answers, every call otherwise) answers `code` or loses its answer, `count`
    times (-1: until cleared), each time with probability `rate`, for requests signed
    with `access_key` only when one is given (so tests running at once keep apart).
    `spare` is the opposite: calls it matches get no fault at all, neither asked nor at the
    configured rates (a test's own setup, done "by hand", is not what it tests)."""

    operation: str
    count: int = 1
    lose_answer: bool = False
    code: str = ""
    message: str = ""
    status: int = 400
    access_key: str = ""
    rate: float = 1.0
    spare: bool = False


class Faults:
    def __init__(self, moto_app: Callable, control: Callable):
        self.moto_app = moto_app
        self.control = control
        self.injected = {"throttle": 0, "error": 0, "lost_answers": 0, "asked": 0}
        self.consistency = Consistency()
        self.tokens = Tokens()
        self.backends = Backends()
        self.rules: list[Rule] = []
        self.rules_lock = threading.Lock()
        self.violations: list[dict] = []
        # SSM Run Command, answered here (ssm.py); set by the cloud.
        self.run_command: ssm.RunCommand | None = None

    # ---- test-asked faults ----------------------------------------------------------

    def add_rule(self, spec: dict) -> dict:
        rule = Rule(
            operation=str(spec["operation"]),
            count=int(spec.get("count", 1)),
            lose_answer=bool(spec.get("lose_answer", False)),
            code=str(spec.get("code", "")),
            message=str(spec.get("message", "injected by the local cloud")),
            status=int(spec.get("status", 400)),
            access_key=str(spec.get("access_key", "")),
            rate=float(spec.get("rate", 1.0)),
            spare=bool(spec.get("spare", False)),
        )
        if rule.spare and (rule.lose_answer or rule.code):
            raise ValueError("a spared key gets no fault: `spare` goes without `code` and `lose_answer`")
        if not rule.spare and not rule.lose_answer and not rule.code:
            raise ValueError("a fault needs `code` (an error to answer), `lose_answer: true` or `spare: true`")
        with self.rules_lock:
            self.rules.append(rule)
        return rule.__dict__

    def clear_rules(self) -> None:
        with self.rules_lock:
            self.rules.clear()

    def _take_rule(self, call: wire.Call) -> Rule | None:
        with self.rules_lock:
            # A spared key is spared whatever other rules say.
            for rule in sorted(self.rules, key=lambda r: not r.spare):
                if rule.count == 0 or (rule.access_key and rule.access_key != call.access_key):
                    continue
                if rule.operation == "*":
                    if rule.lose_answer and call.is_read:
                        continue
                elif rule.operation.lower() != call.name.lower():
                    continue
                if random.random() >= rule.rate:
                    continue
                if rule.count > 0:
                    rule.count -= 1
                return rule
        return None

    def status(self) -> dict:
        return {
            **self.injected,
            "violations": len(self.violations),
            "violation_list": self.violations[-20:],
            "refused_not_visible": self.consistency.refused,
            "tokens_replayed": self.tokens.replayed,
            "token_mismatches": self.tokens.mismatches,
        }

    # ---- the request path -----------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_localcloud"):
            return self.control(environ, start_response)
        if path.startswith("/moto-api"):
            with LOCK:
                return list(self.moto_app(environ, start_response))
        try:
            call = wire.read(environ)
        except Exception:
            log.exception("could not read a request: passing it to moto as it is")
            call = None
        if call is None:
            with LOCK:
                return list(self.moto_app(environ, start_response))
        rule = self._take_rule(call)
        spared = rule is not None and rule.spare
        if rule is not None and not rule.lose_answer and not spared:
            self.injected["asked"] += 1
            return self._answer(start_response, error_response(call.signing_name, rule.code, rule.message, rule.status))
        roll = 1.0 if spared else random.random()
        throttle = roll < SETTINGS.throttle_rate
        error = not throttle and roll < SETTINGS.throttle_rate + SETTINGS.error_rate
        if throttle or error:
            self.injected["throttle" if throttle else "error"] += 1
            return self._answer(start_response, injected(call.signing_name, throttle))
        aws = SETTINGS.aws
        if aws["validate"]:
            try:
                validate.check(call, self)
            except validate.Violation as v:
                entry = {"operation": call.name, "code": v.code, "message": v.message}
                self.violations.append(entry)
                log.error("request refused by validation: %s: %s: %s", call.name, v.code, v.message)
                return self._answer(start_response, error_response(call.signing_name, v.code, v.message, 400))
        lose = (rule is not None and rule.lose_answer) or (
            not spared and not call.is_read and aws["lost_answer_rate"] > 0 and random.random() < aws["lost_answer_rate"]
        )
        if self.run_command is not None and call.service == "ssm" and call.operation in ssm.OPERATIONS:
            try:
                answer = json.dumps(self.run_command.handle(call)).encode()
            except ssm.SsmError as e:
                return self._answer(start_response, error_response(call.signing_name, e.code, e.message, 400))
            if lose:
                self.injected["lost_answers"] += 1
                log.info("lost the answer to %s (applied; the client never hears)", call.name)
                return self._drop(environ, start_response)
            return self._answer(start_response, ("200 OK", "application/x-amz-json-1.1", answer))
        with LOCK:
            try:
                self.consistency.before(call, self.backends)
                replay = self.tokens.before(call) if aws["client_tokens"] else None
            except Refusal as r:
                self.consistency.done()
                return self._answer(start_response, error_response(call.signing_name, r.code, r.message, r.status))
            except Stale as s:
                self.consistency.done()
                return self._answer(start_response, ("200 OK", s.kind, s.body))
            except Mismatch as m:
                self.consistency.done()
                return self._answer(start_response, error_response(call.signing_name, "IdempotentParameterMismatch", str(m), 400))
            if replay is not None:
                self.consistency.done()
                status, headers, body = replay
            else:
                captured: dict = {}

                def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
                    captured["status"], captured["headers"] = status, headers
                    return lambda data: None

                try:
                    body = b"".join(self.moto_app(environ, capture))
                finally:
                    self.consistency.done()
                status, headers = captured.get("status", "500 Internal Server Error"), captured.get("headers", [])
                code = int(status.split()[0])
                new_body = self.consistency.after(call, code, body)
                if aws["client_tokens"]:
                    self.tokens.after(call, status, headers, body)
                body = new_body
        if lose:
            self.injected["lost_answers"] += 1
            log.info("lost the answer to %s (applied; the client never hears)", call.name)
            return self._drop(environ, start_response)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    @staticmethod
    def _answer(start_response: Callable, answer: tuple[str, str, bytes]) -> list[bytes]:
        status, kind, body = answer
        start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _drop(environ: dict, start_response: Callable) -> list[bytes]:
        """Close the connection without an answer."""
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        start_response("500 Internal Server Error", [("Content-Length", "0")])
        return []

    # Asked by validation: a target group's current health check (interval, timeout).
    def target_group_health_check(self, arn: str) -> tuple[int, int] | None:
        from moto.elbv2.models import elbv2_backends

        with LOCK:
            for region in elbv2_backends["123456789012"].values():
                tg = region.target_groups.get(arn)
                if tg is not None:
                    return int(tg.health_check_interval_seconds), int(tg.health_check_timeout_seconds)
        return None
