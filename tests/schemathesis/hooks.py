"""schemathesis hooks for the contract test (tests/contract.rs): the credential each request carries.

Each operation gets the credential of a role its OpenAPI `security` allows, so every role is
exercised and the `ignored_auth` check probes each scheme:

- customer (`oms_ot_...`): the order's own access token, learned from the 202 that created the
  order (storefront or marketplace), for operations on that order that customers may call;
- fulfilment (`oms_fk_...`): the key of the shipment's location, learned from order views, for
  shipment updates (a shipment not seen yet gets the staff token);
- staff: the bootstrap admin token, for everything else that needs a credential.

Marketplace deliveries (`POST /v1/channels/{channel}/orders`) are signed as the channel's
marketplace signs them: Shopify's `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body)
and Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`), over
the exact bytes sent; a signed Shopify delivery names its topic (`X-Shopify-Topic`, `orders/create`
unless the case set one), as Shopify's always do. A signature header the case left out stays out (a missing header is a case
of its own), and a channel the OMS does not know gets no signature.

The test passes everything through the environment:
  OMS_STAFF_TOKEN           staff bearer token
  OMS_FULFILMENT_KEYS       JSON {"<location>": "<fulfilment key>"} (may be {})
  OMS_ORDER_TOKENS          JSON {"<order id>": "<access token>"} of the orders made before the run
  OMS_SHOPIFY_CHANNEL       Shopify channel id, OMS_SHOPIFY_SECRET its secret
  OMS_STANDARD_CHANNEL      Standard Webhooks channel id, OMS_STANDARD_SECRET its `whsec_` secret
"""

import atexit
import base64
import collections
import hashlib
import hmac
import json
import os
import re
import sys
import time
import uuid

import schemathesis

STAFF = os.environ["OMS_STAFF_TOKEN"]
FULFILMENT_KEYS = json.loads(os.environ.get("OMS_FULFILMENT_KEYS") or "{}")
SHOPIFY = (os.environ.get("OMS_SHOPIFY_CHANNEL"), os.environ.get("OMS_SHOPIFY_SECRET", ""))
STANDARD = (os.environ.get("OMS_STANDARD_CHANNEL"), os.environ.get("OMS_STANDARD_SECRET", ""))

MARKETPLACE_PATH = "/v1/channels/{channel}/orders"
SHOPIFY_HEADER = "x-shopify-hmac-sha256"
SHOPIFY_TOPIC = "x-shopify-topic"
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")

# Scheme names of the generated document (staff, fulfilment, customer) and of the hand-written
# one it replaces (adminToken).
STAFF_SCHEMES = {"staff", "adminToken"}

# Order id -> its customer access token (the test's seed orders, then every 202 seen);
# shipment id -> its location (learned from order views).
ORDER_TOKENS: dict[str, str] = json.loads(os.environ.get("OMS_ORDER_TOKENS") or "{}")
SHIPMENT_LOCATIONS: dict[str, str] = {}


def _schemes(operation) -> set[str]:
    """The security scheme names an operation accepts (any one of its requirements)."""
    security = operation.definition.raw.get("security")
    if security is None:
        security = operation.schema.raw_schema.get("security", [])
    return {name for requirement in security for name in requirement}


def _path_id(case) -> str | None:
    params = case.path_parameters or {}
    value = params.get("id")
    return value if isinstance(value, str) else None


def _credential(case) -> str | None:
    """The bearer token this case carries, or None for a public operation."""
    schemes = _schemes(case.operation)
    if not schemes:
        return None
    path_id = _path_id(case)
    if "customer" in schemes and path_id in ORDER_TOKENS and case.operation.path.startswith("/v1/orders/"):
        return ORDER_TOKENS[path_id]
    if "fulfilment" in schemes and path_id in SHIPMENT_LOCATIONS:
        key = FULFILMENT_KEYS.get(SHIPMENT_LOCATIONS[path_id])
        if key:
            return key
    if schemes & STAFF_SCHEMES or "customer" in schemes or "fulfilment" in schemes:
        return STAFF
    return None


def _raw_body(case) -> bytes:
    """The bytes `requests` sends for the case's JSON body (schemathesis passes it as `json=`)."""
    body = case.body
    if isinstance(body, bytes):
        return body
    if body is None:
        return b"null"
    return json.dumps(body, allow_nan=False).encode("utf-8")


def _marketplace_headers(case) -> tuple[str, ...]:
    """The signature headers of the case's marketplace channel (none for an unknown channel)."""
    if case.operation.path != MARKETPLACE_PATH:
        return ()
    channel = (case.path_parameters or {}).get("channel")
    if channel == SHOPIFY[0]:
        return (SHOPIFY_HEADER,)
    if channel == STANDARD[0]:
        return STANDARD_HEADERS
    return ()


def _sign_marketplace(case) -> None:
    """Replaces the signature headers the case carries with valid ones over its final body."""
    names = _marketplace_headers(case)
    headers = case.headers if case.headers is not None else {}
    present = {name.lower(): name for name in headers}
    if not names or not all(name in present for name in names):
        return
    try:
        body = _raw_body(case)
    except (TypeError, ValueError):
        return
    if names == (SHOPIFY_HEADER,):
        digest = hmac.new(SHOPIFY[1].encode(), body, hashlib.sha256).digest()
        headers[present[SHOPIFY_HEADER]] = base64.b64encode(digest).decode()
        # Shopify names the topic of every delivery it signs.
        if SHOPIFY_TOPIC not in present:
            headers["X-Shopify-Topic"] = "orders/create"
    else:
        msg_id = f"msg_{uuid.uuid4().hex}"
        timestamp = str(int(time.time()))
        key = base64.b64decode(STANDARD[1].removeprefix("whsec_"))
        signed = f"{msg_id}.{timestamp}.".encode() + body
        signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        headers[present["webhook-id"]] = msg_id
        headers[present["webhook-timestamp"]] = timestamp
        headers[present["webhook-signature"]] = f"v1,{signature}"


MARKETPLACE = object()


@schemathesis.auth(refresh_interval=None)
class RoleCredentials:
    """Per request: the bearer token of a role the operation allows, or a marketplace signature
    (see the module doc)."""

    def get(self, case, ctx):
        if _marketplace_headers(case):
            return MARKETPLACE
        return _credential(case)

    def set(self, case, data, ctx):
        case.headers = case.headers if case.headers is not None else {}
        if data is MARKETPLACE:
            # Where the document makes the signature a security scheme it is this credential:
            # placeholders now, signed over the final body just before the call. Where it is an
            # ordinary header, only a header the case carries is signed.
            if _schemes(case.operation):
                present = {name.lower() for name in case.headers}
                for name in _marketplace_headers(case):
                    if name not in present:
                        case.headers[name] = "unsigned"
        else:
            case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.hook
def before_call(context, case, kwargs):
    _fresh_idempotency_key(case)
    _sign_marketplace(case)


def _fresh_idempotency_key(case) -> None:
    """A fresh `Idempotency-Key` for every request that carries one, as a client sends one per
    intent: generated keys repeat across different bodies, which the server rightly refuses
    (422, key reused) — a refusal of the test's making, not of the request."""
    headers = case.headers or {}
    for name in headers:
        if name.lower() == "idempotency-key" and isinstance(headers[name], str):
            headers[name] = f"contract-{uuid.uuid4()}"


# Per credential kind, the statuses of the answers it got; printed when schemathesis exits, so the
# test can check that every role was exercised and let through somewhere.
ANSWERS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


def _role_of(request) -> str:
    """Which credential a sent request carried."""
    auth = request.headers.get("Authorization", "")
    token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
    if token == STAFF:
        return "staff"
    if token in FULFILMENT_KEYS.values():
        return "fulfilment"
    if token in ORDER_TOKENS.values():
        return "customer"
    if token:
        return "other"
    if request.headers.get("X-Shopify-Hmac-Sha256") or request.headers.get("webhook-signature"):
        return "marketplace"
    return "none"


@atexit.register
def _print_answers() -> None:
    summary = {role: dict(sorted(counts.items())) for role, counts in sorted(ANSWERS.items())}
    print(f"oms-contract answers by credential: {json.dumps(summary)}", file=sys.stderr)


@schemathesis.hook
def after_call(context, case, response):
    """Counts answers per credential; learns order tokens from intake 202s and shipment
    locations from order views."""
    ANSWERS[_role_of(response.request)][str(response.status_code)] += 1
    if not 200 <= response.status_code < 300:
        return
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    token = body.get("access_token")
    if isinstance(token, str) and isinstance(body.get("id"), str):
        ORDER_TOKENS[body["id"]] = token
    for shipment in body.get("shipments") or []:
        if isinstance(shipment, dict) and isinstance(shipment.get("id"), str):
            location = shipment.get("location")
            if isinstance(location, str):
                SHIPMENT_LOCATIONS[shipment["id"]] = location
    # A shipment update answers the shipment itself.
    if re.fullmatch(r"/v1/shipments/\{id\}/\w+", case.operation.path) and isinstance(body.get("location"), str):
        path_id = _path_id(case)
        if path_id:
            SHIPMENT_LOCATIONS[path_id] = body["location"]
