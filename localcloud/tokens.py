"""Client tokens as EC2 remembers them: a request carrying a `ClientToken` already seen
for the same operation gets the first answer again when its parameters are the same, and
`IdempotentParameterMismatch` when they differ, for the local cloud's whole life (AWS keeps
RunInstances tokens at least a day after the instance ends). moto ignores them."""

from __future__ import annotations

import hashlib
import json
import threading

from .wire import Call


class Tokens:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (operation, token) -> (fingerprint of the other parameters, the first answer)
        self.seen: dict[tuple[str, str], tuple[str, tuple[str, list, bytes] | None]] = {}
        self.replayed = 0
        self.mismatches = 0

    @staticmethod
    def token_of(call: Call) -> str | None:
        if call.service != "ec2":
            return None
        token = call.params.get("ClientToken")
        return token if isinstance(token, str) and token else None

    @staticmethod
    def fingerprint(call: Call) -> str:
        rest = {k: v for k, v in call.params.items() if k != "ClientToken"}
        return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()

    def before(self, call: Call) -> tuple[str, list, bytes] | None:
        """The remembered answer to replay, or None to let the request through. Raises
        Mismatch for a known token with other parameters."""
        token = self.token_of(call)
        if token is None:
            return None
        key = (call.operation, token)
        with self.lock:
            known = self.seen.get(key)
        if known is None:
            return None
        fingerprint, answer = known
        if fingerprint != self.fingerprint(call):
            self.mismatches += 1
            raise Mismatch(token, call.operation)
        if answer is not None:
            self.replayed += 1
        return answer

    def after(self, call: Call, status: str, headers: list, body: bytes) -> None:
        token = self.token_of(call)
        if token is None or not status.startswith("2"):
            return
        with self.lock:
            self.seen.setdefault((call.operation, token), (self.fingerprint(call), (status, headers, body)))


class Mismatch(Exception):
    def __init__(self, token: str, operation: str):
        super().__init__(
            f"The client token you have provided is associated with a resource that is already deleted "
            f"or has different parameters: {operation} with client token {token}"
        )
