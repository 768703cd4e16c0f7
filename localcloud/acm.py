"""ACM as AWS runs it, on moto's bookkeeping (README.md, "AWS as it really behaves").

- A requested certificate names its DNS validation record only after `acm_record_lag`
  seconds (DescribeCertificate shows the domain's validation option without its
  `ResourceRecord` until then, as ACM does for some seconds). The record is derived from
  the domain and the account, as ACM's is: every certificate of a name in the account
  asks for the same CNAME.
- It stays PENDING_VALIDATION until that CNAME is in a public Route 53 hosted zone of the
  account (moto's), then becomes ISSUED `acm_issue_delay` seconds after it was first seen.
  (moto issues every certificate after 60 s, record or not.)
- DeleteCertificate of a certificate a load balancer's listener uses answers
  ResourceInUseException, and goes on answering it for `acm_in_use_lag` seconds after the
  listener or its load balancer was deleted (ACM learns it late).

`apply(cloud)` is called once, after patches.apply."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from moto.acm import models as acm_models
from moto.core.exceptions import AWSError
from moto.core.utils import utcnow
from moto.elbv2 import models as elbv2_models
from moto.elbv2.models import elbv2_backends
from moto.route53.models import route53_backends

from .settings import LOCK, SETTINGS

log = logging.getLogger("localcloud.acm")
ACCOUNT = "123456789012"


class ResourceInUse(AWSError):
    TYPE = "ResourceInUseException"


def validation_record(domain: str) -> tuple[str, str]:
    """The CNAME (name, value) ACM asks for `domain` in this account."""
    base = domain[2:] if domain.startswith("*.") else domain
    digest = hashlib.sha256(f"{ACCOUNT}/{base.lower()}".encode()).hexdigest()
    letters = "".join(chr(ord("a") + int(c, 16) % 26) for c in digest[32:42])
    return f"_{digest[:32]}.{base.lower()}.", f"_{digest[32:64]}.{letters}.acm-validations.aws."


def _domains(cert: Any) -> list[str]:
    return sorted(set(cert.sans + ([cert.common_name] if cert.common_name else [])))


def _in_a_zone(name: str, value: str) -> bool:
    """Whether a public hosted zone of the account holds the CNAME `name` -> `value`."""
    want = value.rstrip(".").lower()
    for backend in route53_backends[ACCOUNT].values():
        for zone in list(backend.zones.values()):
            if zone.private_zone or not (name.rstrip(".").lower() + ".").endswith("." + zone.name.rstrip(".").lower() + "."):
                continue
            for rrset in zone.rrsets:
                if rrset.name.rstrip(".").lower() == name.rstrip(".").lower() and rrset.type == "CNAME":
                    if any(str(v).rstrip(".").lower() == want for v in rrset.records):
                        return True
    return False


def _listeners_using(arn: str) -> list[str]:
    users = []
    for backend in elbv2_backends[ACCOUNT].values():
        for lb in backend.load_balancers.values():
            for listener in lb.listeners.values():
                if any(_cert_arn(c) == arn for c in listener.certificates):
                    users.append(lb.arn)
    return users


def _cert_arn(c: Any) -> str | None:
    if isinstance(c, dict):
        return c.get("CertificateArn") or c.get("certificate_arn")
    return c


# certificate ARN -> until when ACM still holds it in use (a deleted user's lag).
_released: dict[str, float] = {}


def apply(cloud: Any) -> None:
    bundle = acm_models.CertBundle
    original_describe = bundle.describe

    def check(self: Any) -> None:
        now = utcnow()
        if self._not_valid_after(self._cert) <= now:
            self.status = "EXPIRED"
            return
        if self.type != "AMAZON_ISSUED" or self.status != "PENDING_VALIDATION":
            return
        age = (now - self.created_at).total_seconds()
        if age < SETTINGS.aws["acm_record_lag"]:
            return
        seen = getattr(self, "_lc_record_seen", None)
        if seen is None:
            if all(_in_a_zone(*validation_record(d)) for d in _domains(self)):
                self._lc_record_seen = seen = time.time()
                log.info("certificate %s: validation record found", self.arn)
            else:
                return
        if time.time() - seen >= SETTINGS.aws["acm_issue_delay"]:
            self.status = "ISSUED"
            log.info("certificate %s issued for %s", self.arn, ", ".join(_domains(self)))

    def describe(self: Any) -> dict:
        result = original_describe(self)
        detail = result["Certificate"]
        if "DomainValidationOptions" in detail:
            age = (utcnow() - self.created_at).total_seconds()
            named = age >= SETTINGS.aws["acm_record_lag"]
            for option in detail["DomainValidationOptions"]:
                name, value = validation_record(option["DomainName"])
                if named:
                    option["ResourceRecord"] = {"Name": name, "Type": "CNAME", "Value": value}
                else:
                    option.pop("ResourceRecord", None)
        if self.status != "ISSUED":
            detail.pop("IssuedAt", None)
        detail["InUseBy"] = _listeners_using(self.arn)
        return result

    bundle.check = check
    bundle.describe = describe

    backend_cls = acm_models.AWSCertificateManagerBackend
    original_delete = backend_cls.delete_certificate

    def delete_certificate(self: Any, arn: str) -> None:
        users = _listeners_using(arn)
        if users or _released.get(arn, 0.0) > time.time():
            raise ResourceInUse(
                message=f"Certificate {arn} is in use by {', '.join(users) or 'a load balancer deleted moments ago'}"
            )
        original_delete(self, arn)

    backend_cls.delete_certificate = delete_certificate

    elb_cls = elbv2_models.ELBv2Backend
    original_delete_lb = elb_cls.delete_load_balancer
    original_delete_listener = elb_cls.delete_listener

    def release(listeners: list) -> None:
        until = time.time() + SETTINGS.aws["acm_in_use_lag"]
        for listener in listeners:
            for c in listener.certificates:
                arn = _cert_arn(c)
                if arn:
                    _released[arn] = until

    def delete_load_balancer(self: Any, arn: str) -> Any:
        lb = self.load_balancers.get(arn)
        listeners = list(lb.listeners.values()) if lb is not None else []
        result = original_delete_lb(self, arn)
        release(listeners)
        return result

    def delete_listener(self: Any, listener_arn: str) -> Any:
        listener = original_delete_listener(self, listener_arn)
        release([listener])
        return listener

    elb_cls.delete_load_balancer = delete_load_balancer
    elb_cls.delete_listener = delete_listener


def certificate_names(arn: str) -> list[str]:
    """The names an ACM certificate is for (empty if there is no such certificate)."""
    with LOCK:
        for backend in acm_models.acm_backends[ACCOUNT].values():
            cert = backend._certificates.get(arn)
            if cert is not None:
                return _domains(cert)
        return []
