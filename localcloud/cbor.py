"""Smithy RPC v2 CBOR, as CloudWatch speaks it to current SDKs (the Rust SDK speaks nothing
else, and botocore picks it first): `POST /service/GraniteServiceVersion20100801/operation/<Op>`
with `smithy-protocol: rpc-v2-cbor` and a CBOR body, answered in CBOR with the same header.
moto knows only CloudWatch's query and JSON protocols, so each such request is decoded here
and handed on, as the JSON protocol (`application/x-amz-json-1.0`, `X-Amz-Target`), to the
rest of the local cloud (faults, validation, consistency, moto), whose answer is encoded back:
an output as the operation's output shape (timestamps as tag 1, epoch seconds), an error
as the protocol says: its status, a map with `__type` (the error's shape id) and `message`,
and, CloudWatch being query-compatible, `x-amzn-query-error: <code>;Sender|Receiver` (the
code the SDKs match on: `ResourceNotFoundException`, `ResourceNotFound`, `ValidationError`,
...). Decoding and encoding reuse botocore's CBOR parser and serializer.

CloudWatch over its JSON protocol (boto3's choice) passes through, except the local
cloud's own refusals (faults.py answers signing name `monitoring` in query XML): those are
rewritten as awsJson errors with the same `__type` and `x-amzn-query-error`."""

from __future__ import annotations

import base64
import datetime
import gzip
import io
import json
import logging
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from typing import Any, Callable, Iterable

from botocore.parsers import JSONParser, RpcV2CBORParser
from botocore.serialize import RpcV2CBORSerializer
from botocore.utils import parse_timestamp

from . import wire

log = logging.getLogger("localcloud.cbor")

PATH = re.compile(r"^/service/([^/]+)/operation/([^/]+)/?$")
CONTENT_TYPE = "application/cbor"
PROTOCOL = "rpc-v2-cbor"
# Smithy service name -> (botocore's service name, the Smithy namespace of its shapes).
SERVICES = {"GraniteServiceVersion20100801": ("cloudwatch", "com.amazonaws.cloudwatch")}
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
           429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable"}


def _raw(value: Any) -> Any:
    """Timestamps as they came (epoch seconds), not as datetimes."""
    return value


class _Decoder(RpcV2CBORParser):
    def __init__(self) -> None:
        super().__init__(timestamp_parser=_raw)

    def decode(self, body: bytes) -> Any:
        if not body:
            return {}
        stream = self.get_peekable_stream_from_bytes(body)
        value = self.parse_data_item(stream)
        if stream.read(1):
            raise ValueError("bytes after the CBOR data item")
        return value


class _Encoder(RpcV2CBORSerializer):
    """botocore's CBOR serializer, for answers: numbers as the shape says (a double is a
    CBOR float even when moto has an integer: the Rust SDK reads doubles as floats only),
    timestamps as tag 1 with epoch seconds (an integer, or a float with a fraction)."""

    def encode(self, value: Any, shape: Any) -> bytes:
        out = bytearray()
        self._serialize_data_item(out, value, shape)
        return bytes(out)

    def encode_map(self, value: dict[str, str]) -> bytes:
        out = bytearray()
        out.extend(self._get_initial_byte(self.MAP_MAJOR_TYPE, len(value)))
        for k, v in value.items():
            self._serialize_type_string(out, k, None, None)
            self._serialize_type_string(out, v, None, None)
        return bytes(out)

    def _serialize_type_integer(self, serialized: bytearray, value: Any, shape: Any, key: Any) -> None:
        super()._serialize_type_integer(serialized, int(value), shape, key)

    def _serialize_type_double(self, serialized: bytearray, value: Any, shape: Any, key: Any) -> None:
        super()._serialize_type_double(serialized, float(value), shape, key)

    def _serialize_type_float(self, serialized: bytearray, value: Any, shape: Any, key: Any) -> None:
        super()._serialize_type_double(serialized, float(value), shape, key)

    def _serialize_type_timestamp(self, serialized: bytearray, value: Any, shape: Any, key: Any) -> None:
        seconds = epoch(value)
        serialized.extend(self._get_initial_byte(self.TAG_MAJOR_TYPE, 1))
        if seconds == int(seconds):
            super()._serialize_type_integer(serialized, int(seconds), shape, key)
        else:
            super()._serialize_type_double(serialized, seconds, shape, key)


def epoch(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            value = parse_timestamp(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    raise ValueError(f"not a timestamp: {value!r}")


def to_json(value: Any) -> Any:
    """A decoded CBOR value as the JSON protocol writes it: byte strings base64, tag-1
    timestamps epoch seconds (already numbers), maps and arrays alike."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, float) and value != value:
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == float("-inf"):
        return "-Infinity"
    return value


class Bridge:
    """WSGI middleware in front of the local cloud's front (faults.Faults): RPC v2 CBOR
    requests in, JSON-protocol requests on; their answers back in CBOR. Everything else
    passes through untouched."""

    def __init__(self, app: Callable, faults: Any = None):
        self.app = app
        self.faults = faults
        self.decoder = _Decoder()
        self.encoder = _Encoder()
        # Requests received in RPC v2 CBOR, by operation (`monitoring:PutMetricAlarm`):
        # `GET /_localcloud/status` -> `rpc_v2_cbor`.
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()
        self._errors: dict[str, dict[str, tuple[str, str]]] = {}

    # ---- what is an RPC v2 CBOR request -------------------------------------------

    @staticmethod
    def target(environ: dict) -> tuple[str, str] | None:
        m = PATH.match(environ.get("PATH_INFO", ""))
        if m is None or m.group(1) not in SERVICES or environ.get("REQUEST_METHOD") != "POST":
            return None
        if PROTOCOL not in environ.get("HTTP_SMITHY_PROTOCOL", "") and CONTENT_TYPE not in environ.get("CONTENT_TYPE", ""):
            return None
        return m.group(1), m.group(2)

    @staticmethod
    def json_target(environ: dict) -> str | None:
        """The Smithy service name of a JSON-protocol request to a service bridged here."""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        service_name = target.split(".", 1)[0]
        if service_name in SERVICES and environ.get("CONTENT_TYPE", "").startswith("application/x-amz-json"):
            return service_name
        return None

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        target = self.target(environ)
        if target is None:
            json_service = self.json_target(environ)
            if json_service is not None:
                return self._json_errors(environ, start_response, json_service)
            return self.app(environ, start_response)
        service_name, operation = target
        service, namespace = SERVICES[service_name]
        sc = wire.scope(environ)
        name = f"{sc[0] if sc else 'monitoring'}:{operation}"
        with self.lock:
            self.seen[name] = self.seen.get(name, 0) + 1
        body = wire.buffer_body(environ)
        if "gzip" in environ.get("HTTP_CONTENT_ENCODING", "").lower():
            # Request compression (PutMetricData over 10 KiB, as the SDKs send it).
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError) as e:
                return self._refuse(environ, start_response, service, namespace, operation, "SerializationException",
                                    f"the request body is not gzip: {e}", 400)
            environ.pop("HTTP_CONTENT_ENCODING", None)
        if PROTOCOL not in environ.get("HTTP_SMITHY_PROTOCOL", ""):
            return self._refuse(environ, start_response, service, namespace, operation, "SerializationException",
                                "the smithy-protocol header must be rpc-v2-cbor", 400)
        try:
            decoded = self.decoder.decode(body)
        except Exception as e:
            return self._refuse(environ, start_response, service, namespace, operation, "SerializationException",
                                f"the request body is not CBOR: {e}", 400)
        if not isinstance(decoded, dict):
            return self._refuse(environ, start_response, service, namespace, operation, "SerializationException",
                                "the request body is not a CBOR map", 400)
        document = json.dumps(to_json(decoded)).encode()
        log.debug("rpc-v2-cbor %s.%s (%s) -> json", service_name, operation, environ.get("CONTENT_TYPE"))
        environ["localcloud.cbor"] = {"service": service_name, "operation": operation,
                                      "content_type": environ.get("CONTENT_TYPE", "")}
        environ["PATH_INFO"] = "/"
        environ["CONTENT_TYPE"] = "application/x-amz-json-1.0"
        environ["HTTP_X_AMZ_TARGET"] = f"{service_name}.{operation}"
        environ["HTTP_ACCEPT"] = "application/json"
        environ.pop("HTTP_SMITHY_PROTOCOL", None)
        environ["wsgi.input"] = io.BytesIO(document)
        environ["CONTENT_LENGTH"] = str(len(document))
        environ["localcloud.body"] = document

        try:
            status, headers, answer = self._inner(environ)
        except NotImplementedError as e:
            # An operation moto lacks (PutCompositeAlarm, DescribeAlarmHistory, ...): 501, which
            # the SDKs do not retry, rather than a 500 they would.
            log.error("%s: %s", name, e)
            return self._error(start_response, service, namespace, "NotImplemented",
                               f"the local cloud (moto) does not implement {operation}: {e}", 501, str(uuid.uuid4()))
        except Exception as e:  # moto crashed: say so in CBOR (the SDK retries a 500)
            log.exception("%s failed", name)
            return self._error(start_response, service, namespace, "InternalFailure",
                               f"the local cloud failed: {type(e).__name__}: {e}", 500, str(uuid.uuid4()))
        code = int(status.split()[0])
        kind = next((v for k, v in headers if k.lower() == "content-type"), "")
        if code == 500 and not answer and not kind:
            # A lost answer (faults.py closed the connection): nothing to encode.
            start_response(status, headers)
            return [answer]
        request_id = next((v for k, v in headers if k.lower() == "x-amzn-requestid"), "") or str(uuid.uuid4())
        if code < 300:
            try:
                out = self._output(service, operation, answer)
            except Exception:
                log.exception("could not encode the answer to %s.%s as CBOR", service_name, operation)
                return self._error(start_response, service, namespace, "InternalFailure",
                                   "the local cloud could not encode the answer", 500, request_id)
            return self._send(start_response, status, out, request_id, [])
        error_code, message = self._read_error(answer, kind, headers)
        return self._error(start_response, service, namespace, error_code, message, code, request_id)

    def _inner(self, environ: dict) -> tuple[str, list, bytes]:
        captured: dict = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self.app(environ, capture)
        try:
            answer = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return captured.get("status", "500 Internal Server Error"), captured.get("headers", []), answer

    def _json_errors(self, environ: dict, start_response: Callable, service_name: str) -> list[bytes]:
        """CloudWatch over its JSON protocol (botocore's choice: it ranks JSON above CBOR):
        moto answers it, but the local cloud's own refusals (faults, validation) are in the
        query format it gives signing name `monitoring`; they are rewritten as awsJson 1.0
        errors with the query-compatible `x-amzn-query-error` header, as moto's own are."""
        service, namespace = SERVICES[service_name]
        status, headers, answer = self._inner(environ)
        code = int(status.split()[0])
        kind = next((v for k, v in headers if k.lower() == "content-type"), "")
        has_query_error = any(k.lower() == "x-amzn-query-error" for k, _ in headers)
        if code < 300 or has_query_error or (code == 500 and not answer and not kind):
            start_response(status, headers)
            return [answer]
        error_code, message = self._read_error(answer, kind, headers)
        shape_name, query_code = self.errors(service).get(error_code, (error_code, error_code))
        body = json.dumps({"__type": f"{namespace}#{shape_name}", "message": message}).encode()
        request_id = next((v for k, v in headers if k.lower() == "x-amzn-requestid"), "") or str(uuid.uuid4())
        fault = "Sender" if code < 500 else "Receiver"
        start_response(status, [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-requestid", request_id),
                                ("x-amzn-query-error", f"{query_code};{fault}"), ("Content-Length", str(len(body)))])
        return [body]

    # ---- answers ----------------------------------------------------------------------

    def _output(self, service: str, operation: str, answer: bytes) -> bytes:
        op = wire.service_model(service).operation_model(operation)
        shape = op.output_shape
        if shape is None:
            return b""
        parsed = JSONParser(timestamp_parser=_raw).parse({"body": answer or b"{}", "headers": {}, "status_code": 200}, shape)
        parsed.pop("ResponseMetadata", None)
        return self.encoder.encode(parsed, shape)

    @staticmethod
    def _read_error(answer: bytes, kind: str, headers: list) -> tuple[str, str]:
        """(code, message) of an error in JSON (moto, faults.py's JSON services) or query XML
        (faults.py, validation)."""
        code, message = "", ""
        query_error = next((v for k, v in headers if k.lower() == "x-amzn-query-error"), "")
        text = answer.decode(errors="replace").strip()
        if text.startswith("{"):
            try:
                doc = json.loads(text)
                code = str(doc.get("__type", doc.get("code", "")))
                message = str(doc.get("message", doc.get("Message", "")))
            except ValueError:
                pass
        elif text.startswith("<"):
            try:
                root = ET.fromstring(text)
                code = root.findtext(".//Code") or ""
                message = root.findtext(".//Message") or ""
            except ET.ParseError:
                pass
        code = code.split(":", 1)[0].rsplit("#", 1)[-1]
        if query_error and ";" in query_error:
            code = query_error.split(";", 1)[0]
        return code or "InternalFailure", message

    def errors(self, service: str) -> dict[str, tuple[str, str]]:
        """Any name an error goes by (its shape's name, its query code) -> (shape name, query code)."""
        if service not in self._errors:
            table: dict[str, tuple[str, str]] = {}
            model = wire.service_model(service)
            for shape in model.error_shapes:
                code = shape.metadata.get("error", {}).get("code", shape.name)
                table.setdefault(code, (shape.name, code))
                table[shape.name] = (shape.name, code)
            self._errors[service] = table
        return self._errors[service]

    def _error(self, start_response: Callable, service: str, namespace: str, code: str, message: str,
               status: int, request_id: str) -> list[bytes]:
        shape_name, query_code = self.errors(service).get(code, (code, code))
        body = self.encoder.encode_map({"__type": f"{namespace}#{shape_name}", "message": message})
        fault = "Sender" if status < 500 else "Receiver"
        line = f"{status} {REASONS.get(status, 'Error')}"
        return self._send(start_response, line, body, request_id, [("x-amzn-query-error", f"{query_code};{fault}")])

    def _refuse(self, environ: dict, start_response: Callable, service: str, namespace: str, operation: str,
                code: str, message: str, status: int) -> list[bytes]:
        """A request that is not RPC v2 CBOR as the protocol says: refused, and counted as
        a violation, as validation counts what AWS would refuse."""
        sc = wire.scope(environ)
        name = f"{sc[0] if sc else 'monitoring'}:{operation}"
        if self.faults is not None:
            self.faults.violations.append({"operation": name, "code": code, "message": message})
        log.error("request refused: %s: %s: %s", name, code, message)
        return self._error(start_response, service, namespace, code, message, status, str(uuid.uuid4()))

    @staticmethod
    def _send(start_response: Callable, status: str, body: bytes, request_id: str, extra: list) -> list[bytes]:
        headers = [("Content-Type", CONTENT_TYPE), ("smithy-protocol", PROTOCOL), ("x-amzn-requestid", request_id),
                   ("Content-Length", str(len(body))), *extra]
        start_response(status, headers)
        return [body]
