"""What an AWS request on the wire is: its service, its operation, and its parameters as
the service model (botocore's, which moto ships) defines them. The fault, validation,
consistency and idempotency layers all read requests through this."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from moto.core.parse import PROTOCOL_PARSERS
from moto.core.utils import get_service_model
from werkzeug.datastructures import Headers, MultiDict

CREDENTIAL_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
QUERY_SCOPE = re.compile(r"X-Amz-Credential=([^&%]*)%2F\d{8}%2F([a-z0-9-]+)%2F([a-z0-9-]+)%2Faws4_request")
# Signing name -> botocore's service name.
SERVICES = {
    "ec2": "ec2",
    "elasticloadbalancing": "elbv2",
    "rds": "rds",
    "autoscaling": "autoscaling",
    "iam": "iam",
    "sts": "sts",
    "secretsmanager": "secretsmanager",
    "ssm": "ssm",
    "s3": "s3",
    "acm": "acm",
    "route53": "route53",
    "monitoring": "cloudwatch",
    "logs": "logs",
    "sns": "sns",
}
READ_PREFIXES = ("Describe", "Get", "List", "Head", "Filter")
# S3 bodies worth parsing: the small XML documents of bucket configuration calls.
SMALL_BODY = 1 << 20


@dataclass
class Call:
    """One AWS request, read off the wire."""

    signing_name: str
    service: str  # botocore's name: ec2, elbv2, s3, ...
    region: str
    protocol: str
    operation: str
    params: dict = field(default_factory=dict)
    # The raw parameters as sent (query protocols: the form; json: the document).
    raw: Any = None
    model: Any = None
    # S3: the URI labels.
    labels: dict = field(default_factory=dict)
    access_key: str = ""
    # False when the parameters could not be read off the request (then not validated).
    parsed: bool = True

    @property
    def name(self) -> str:
        """`ec2:CreateVpc`, as control calls and logs name operations."""
        return f"{self.signing_name}:{self.operation}"

    @property
    def is_read(self) -> bool:
        return self.operation.startswith(READ_PREFIXES)


_MODELS: dict[str, Any] = {}


def service_model(service: str) -> Any:
    if service not in _MODELS:
        _MODELS[service] = get_service_model(service)
    return _MODELS[service]


def scope(environ: dict) -> tuple[str, str, str] | None:
    """(signing name, region, access key) from the SigV4 Authorization header or a
    presigned query."""
    m = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if m:
        return m.group(3), m.group(2), m.group(1)
    m = QUERY_SCOPE.search(environ.get("QUERY_STRING", ""))
    if m:
        return m.group(3), m.group(2), m.group(1)
    return None


def buffer_body(environ: dict) -> bytes:
    """Read the request body once and put it back for moto."""
    if "localcloud.body" in environ:
        return environ["localcloud.body"]
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length:
        data = stream.read(int(length))
    elif environ.get("wsgi.input_terminated") or environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        data = stream.read()
    else:
        data = b""
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ["wsgi.input_terminated"] = False
    environ["localcloud.body"] = data
    return data


def headers_of(environ: dict) -> Headers:
    h = Headers()
    for k, v in environ.items():
        if k.startswith("HTTP_"):
            h.add(k[5:].replace("_", "-").title(), v)
    if environ.get("CONTENT_TYPE"):
        h.add("Content-Type", environ["CONTENT_TYPE"])
    if environ.get("CONTENT_LENGTH"):
        h.add("Content-Length", environ["CONTENT_LENGTH"])
    return h


def read(environ: dict) -> Call | None:
    """The call, or None for what is not an AWS API request (the control API, moto's own)."""
    sc = scope(environ)
    if sc is None:
        return None
    signing, region, access_key = sc
    service = SERVICES.get(signing)
    if service is None:
        return None
    model = service_model(service)
    protocol = model.protocol
    if protocol == "smithy-rpc-v2-cbor":
        # CloudWatch: query or JSON as sent (cbor.py hands RPC v2 CBOR requests on as JSON).
        protocol = "query" if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", "") else "json"
    headers = headers_of(environ)
    query = MultiDict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if protocol in ("query", "ec2"):
        body = buffer_body(environ)
        values = MultiDict(query)
        if body and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            for k, v in parse_qsl(body.decode(errors="replace"), keep_blank_values=True):
                values.add(k, v)
        operation = values.get("Action", "")
        if service == "elbv2" and values.get("Version") == "2012-06-01":
            return None  # the classic load balancer API: not ours
        request = {"method": environ["REQUEST_METHOD"], "values": values, "headers": headers, "body": body,
                   "url_path": environ.get("PATH_INFO", "/"), "url_params": {}}
        raw: Any = values
        labels: dict = {}
    elif protocol == "json":
        body = buffer_body(environ)
        target = headers.get("X-Amz-Target", "")
        operation = target.split(".")[-1]
        try:
            raw = json.loads(body or b"{}")
        except ValueError:
            raw = None
        request = {"method": environ["REQUEST_METHOD"], "values": query, "headers": headers, "body": body,
                   "url_path": environ.get("PATH_INFO", "/"), "url_params": {}}
        labels = {}
    else:  # rest-xml: S3, Route 53
        if service == "s3":
            operation, labels = s3_operation(model, environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"), query, headers)
        else:
            operation, labels = rest_operation(model, environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"), query)
        body = b""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if operation not in ("PutObject", "UploadPart") and length <= SMALL_BODY:
            body = buffer_body(environ)
        request = {"method": environ["REQUEST_METHOD"], "values": query, "headers": headers, "body": body,
                   "url_path": environ.get("PATH_INFO", "/"), "url_params": labels}
        raw = query
    if not operation or operation not in model.operation_names:
        described = operation or f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '/')}?{environ.get('QUERY_STRING', '')}"
        return Call(signing, service, region, protocol, described, raw=raw, labels=labels, access_key=access_key)
    op_model = model.operation_model(operation)
    try:
        params = PROTOCOL_PARSERS[protocol](op_model).parse(request)
    except Exception:
        # Not ours to judge: moto's parser fails where botocore's model would not (the
        # request goes to moto as it is, and is not validated).
        return Call(signing, service, region, protocol, operation, raw=raw, labels=labels, access_key=access_key, parsed=False)
    return Call(signing, service, region, protocol, operation, params, raw, op_model, labels, access_key)


def rest_operation(model: Any, method: str, path: str, query: MultiDict) -> tuple[str, dict]:
    """A REST service other than S3 (Route 53) names its operations by method and URI
    template: the operation whose template matches the path with the most literal text,
    and the labels it binds."""
    best, best_labels, best_score = "", {}, -1
    for name in model.operation_names:
        http = model.operation_model(name).http
        if http.get("method") != method:
            continue
        template, _, qs = http.get("requestUri", "/").partition("?")
        if any(k.split("=")[0] not in query for k in qs.split("&") if k):
            continue
        pattern = "".join(
            f"(?P<{part[1:-2]}>.+)" if part.endswith("+}") else f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", template.rstrip("/"))
        )
        m = re.fullmatch(pattern + "/?", path)
        if m is None:
            continue
        score = len(re.sub(r"\{[^}]+\}", "", template))
        if score > best_score:
            best, best_labels, best_score = name, {k: unquote(v) for k, v in m.groupdict().items()}, score
    return best, best_labels


def s3_operation(model: Any, method: str, path: str, query: MultiDict, headers: Headers) -> tuple[str, dict]:
    """S3 names its operations by method, path shape, subresources and headers: the most
    specific operation whose template, required query members and headers are present."""
    parts = [p for p in path.split("/") if p != ""]
    labels: dict = {}
    if parts:
        labels["Bucket"] = unquote(parts[0])
    if len(parts) > 1:
        labels["Key"] = unquote(path.split("/", 2)[2])
    shape = "service" if not parts else ("bucket" if len(parts) == 1 else "object")
    # Clients built from Smithy models name the operation in `x-id` (botocore's model does not).
    hinted = query.get("x-id")
    if hinted in model.operation_names and model.operation_model(hinted).http.get("method") == method:
        return hinted, labels
    best, best_rank = "", None
    for name in model.operation_names:
        op = model.operation_model(name)
        http = op.http
        if http.get("method") != method:
            continue
        uri = http.get("requestUri", "/")
        template, _, qs = uri.partition("?")
        kind = "object" if "{Key+}" in template else ("bucket" if "{Bucket}" in template else "service")
        if kind != shape:
            continue
        keys = [k.split("=")[0] for k in qs.split("&") if k and not k.startswith("x-id=")]
        if any(k not in query for k in keys):
            continue
        score = len(keys)
        missing = False
        members = op.input_shape.members if op.input_shape else {}
        for member_name in (op.input_shape.required_members if op.input_shape else []):
            m = members[member_name]
            loc, wire = m.serialization.get("location"), m.serialization.get("name", member_name)
            if loc == "querystring":
                if wire not in query:
                    missing = True
                score += 1
            elif loc == "header":
                if wire not in headers:
                    missing = True
                score += 1
        if missing:
            continue
        # Same route, same score: a deprecated operation (PutBucketLifecycle beside
        # PutBucketLifecycleConfiguration) is what no current client sends.
        rank = (score, not getattr(op, "deprecated", False), -len(name))
        if best_rank is None or rank > best_rank:
            best, best_rank = name, rank
    return best, labels
