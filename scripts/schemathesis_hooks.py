"""schemathesis hooks for scripts/schemathesis (loaded through SCHEMATHESIS_HOOKS).

The Cycles spec states some rules only in prose, so the JSON schema that
schemathesis generates from lets through requests the spec itself says a server
must or may reject. A "positive" (schema-valid) case that breaks such a rule is
answered 4xx, correctly; schemathesis would report it as "schema-valid request
rejected" (ST202), and such requests never reach the ledger. `map_case` repairs
positive cases so they follow those prose rules; negative cases are left alone,
since changing them could turn them valid. What only Tollgate's own, stricter
checks reject is deliberately not repaired: that is a finding.

The rules repaired, each a quote of cycles-protocol-v0.yaml:
- Subject.tenant / the `tenant` query filter "MUST match the effective tenant"
  (403 otherwise): pinned to the seeded tenant, so requests reach the ledger.
- Subject standard fields "SHOULD match ^[a-zA-Z0-9_.-]+$ ... Servers MAY reject
  standard-field values outside this pattern with 400": mapped into the pattern.
- GET /v1/balances: "At least one of tenant/workspace/app/workflow/agent/toolset
  MUST be provided" (else 400): the tenant filter is always set.
- X-Idempotency-Key: "If both header and body idempotency_key are provided,
  they MUST match": the header is set to the body's key (or dropped).
- `cursor` is opaque and server-issued, so a made-up one is rightly 400: dropped.
- GET /v1/reservations windows: "For each pair, `from > to` MUST return 400
  INVALID_REQUEST": a reversed pair is put in order.

`filter_failure` drops the few failures that normative text contradicts outright
(see there); every other failure is reported.
"""

from __future__ import annotations

import os
import re
from datetime import datetime

import schemathesis

TENANT = os.environ.get("ST_TENANT", "st-tenant")
LEVELS = ("tenant", "workspace", "app", "workflow", "agent", "toolset")
OUT_OF_PATTERN = re.compile(r"[^a-zA-Z0-9_.-]")
LEVEL_VALUE_LEN_MAX = 128
WINDOWS = (("from", "to"), ("expires_from", "expires_to"), ("finalized_from", "finalized_to"))


def _in_pattern(value: object) -> str:
    """A value of ^[a-zA-Z0-9_.-]+$ (at most 128 characters) resembling `value`."""
    text = OUT_OF_PATTERN.sub("", value if isinstance(value, str) else str(value))
    return text[:LEVEL_VALUE_LEN_MAX] or "x"


def _instant(value: object) -> datetime | None:
    """The instant an RFC 3339 date-time names; `None` for blanks and what Python cannot parse."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None


def _order_windows(query: dict) -> None:
    for low, high in WINDOWS:
        start, end = _instant(query.get(low)), _instant(query.get(high))
        if start is None or end is None or start.tzinfo is None or end.tzinfo is None:
            continue
        try:
            reversed_pair = start > end
        except OverflowError:  # year 1 or 9999 shifted by its offset
            continue
        if reversed_pair:
            query[low], query[high] = query[high], query[low]


def _is_positive(case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


@schemathesis.hook
def map_case(context, case):
    if not _is_positive(case):
        return case

    body = case.body
    if isinstance(body, dict):
        subject = body.get("subject")
        if isinstance(subject, dict):
            for level in LEVELS[1:]:
                if level in subject:
                    subject[level] = _in_pattern(subject[level])
            subject["tenant"] = TENANT
        key = body.get("idempotency_key")
        if isinstance(key, str) and case.headers is not None:
            for name in list(case.headers):
                if name.lower() == "x-idempotency-key" and case.headers[name] != key:
                    # A header carries printable ASCII only; drop it (it is optional) otherwise.
                    if key.isascii() and key.isprintable() and key.strip() == key:
                        case.headers[name] = key
                    else:
                        del case.headers[name]

    if isinstance(case.query, dict) and case.operation.path in ("/v1/balances", "/v1/reservations"):
        for level in LEVELS[1:]:
            if level in case.query:
                case.query[level] = _in_pattern(case.query[level])
        if case.operation.path == "/v1/balances" or "tenant" in case.query:
            case.query["tenant"] = TENANT
        case.query.pop("cursor", None)
        if case.operation.path == "/v1/reservations":
            _order_windows(case.query)
    return case


# Failures the spec itself contradicts (normative text that the JSON schema cannot
# express); everything else schemathesis finds is reported.
WINDOW_BOUNDS = frozenset(bound for pair in WINDOWS for bound in pair)
INVALID_QUERY_PARAMETER = re.compile(r"parameter `([^`]+)` in query")


@schemathesis.hook
def filter_failure(context, failure, case, response):
    code = getattr(failure, "code", None)
    # "Blank-string values for any window bound MUST be treated as unset ... Servers MUST NOT
    # 400 on empty-string values despite the `format: date-time` declaration."
    if code == "ST201" and case.operation.path == "/v1/reservations" and isinstance(case.query, dict):
        names = INVALID_QUERY_PARAMETER.findall(failure.message or "")
        if names and all(
            name in WINDOW_BOUNDS and isinstance(case.query.get(name), str) and not case.query[name].strip()
            for name in names
        ):
            return False
    # "Unit mismatch MUST return HTTP 400 with error=UNIT_MISMATCH ... (b) commit — actual.unit
    # differs from the reservation's estimate.unit": the stateful phase commits in any unit.
    if code == "ST202" and response.status_code == 400:
        try:
            error = response.json().get("error")
        except Exception:
            error = None
        if error == "UNIT_MISMATCH":
            return False
    return True
