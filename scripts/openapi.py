#!/usr/bin/env python3
"""Writes functions/query/openapi.json (OpenAPI 3.1) — the API description the query component
serves at GET /v1/openapi.json. Edit this file, run it, commit both; a test checks that every
route in spin.toml appears in the document."""
import json, pathlib

money = {"type": "string", "pattern": r"^\d+(\.\d+)?$", "description": "exact decimal; no more places than the currency allows", "examples": ["19.99"]}
problem = {"$ref": "#/components/schemas/Problem"}
def ref(n): return {"$ref": f"#/components/schemas/{n}"}
def body(schema, required=True): return {"required": required, "content": {"application/json": {"schema": schema}}}
def resp(desc, schema=None, headers=None):
    r = {"description": desc}
    if schema: r["content"] = {"application/json": {"schema": schema}}
    if headers: r["headers"] = headers
    return r
def problems(*codes):
    names = {400: "Malformed request (problem names the field)", 401: "Missing or bad credentials/signature", 404: "Not found",
             409: "Conflict with the current state", 413: "Body too large", 422: "Invalid request (problem lists every field)",
             503: "Busy or queue unavailable; retry"}
    return {str(c): {"description": names[c], "content": {"application/problem+json": {"schema": problem}}} for c in codes}
idem = {"name": "Idempotency-Key", "in": "header", "required": True, "schema": {"type": "string", "maxLength": 255},
        "description": "same key and body → the first response again; same key, other body → 422; kept 24 h"}
etag = {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string", "const": "no-cache"}}}
inm = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}
def path_param(n): return {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
admin = [{"adminToken": []}]

paths = {
 "/v1/orders": {"post": {"operationId": "placeOrder", "tags": ["orders"], "summary": "Place a storefront order",
   "parameters": [idem], "requestBody": body(ref("OrderRequest")),
   "responses": {"202": resp("Accepted: stored and queued for reservation", ref("Accepted"), {"Location": {"schema": {"type": "string"}}}), **problems(400, 409, 413, 422, 503)}}},
 "/v1/channels/{channel}/orders": {"post": {"operationId": "marketplaceOrder", "tags": ["orders"],
   "summary": "Marketplace webhook (Shopify orders/create or Standard Webhooks)",
   "description": "Shopify channels: X-Shopify-Hmac-Sha256 (base64 HMAC-SHA256 of the raw body). Standard channels: webhook-id, webhook-timestamp (±5 min), webhook-signature v1. A redelivery answers 200 with the first order.",
   "parameters": [path_param("channel"),
     {"name": "X-Shopify-Hmac-Sha256", "in": "header", "required": False, "schema": {"type": "string"}},
     {"name": "webhook-id", "in": "header", "required": False, "schema": {"type": "string"}},
     {"name": "webhook-timestamp", "in": "header", "required": False, "schema": {"type": "string"}},
     {"name": "webhook-signature", "in": "header", "required": False, "schema": {"type": "string"}}],
   "requestBody": body({"type": "object"}),
   "responses": {"202": resp("Accepted", ref("Accepted")), "200": resp("Redelivery: the order already taken in", {"type": "object"}), **problems(400, 401, 404, 422, 503)}}},
 "/v1/orders/{id}": {"get": {"operationId": "getOrder", "tags": ["reads"], "parameters": [path_param("id"), inm],
   "responses": {"200": resp("The order", ref("OrderView"), etag), "304": {"description": "Not modified"}, **problems(400, 404)}}},
 "/v1/orders/{id}/events": {"get": {"operationId": "getTimeline", "tags": ["reads"], "parameters": [path_param("id"), inm],
   "responses": {"200": resp("The order's timeline, oldest first", {"type": "object", "properties": {"order_id": {"type": "string"}, "events": {"type": "array", "items": ref("Event")}}}, etag), "304": {"description": "Not modified"}, **problems(400, 404)}}},
 "/v1/availability/{sku}": {"get": {"operationId": "getAvailability", "tags": ["reads"], "parameters": [path_param("sku"), inm],
   "responses": {"200": resp("Stock per location and available-to-promise", ref("Availability"), etag), "304": {"description": "Not modified"}, **problems(400)}}},
 "/v1/openapi.json": {"get": {"operationId": "openapi", "tags": ["reads"], "responses": {"200": resp("This document")}}},
 "/v1/shipments/{id}/shipped": {"post": {"operationId": "shipmentShipped", "tags": ["fulfilment"], "parameters": [path_param("id")],
   "requestBody": body({"type": "object", "required": ["carrier", "tracking"], "properties": {"carrier": {"type": "string"}, "tracking": {"type": "string"}}}),
   "responses": {"200": resp("The shipment (idempotent)", ref("Shipment")), **problems(400, 404, 409, 422)}}},
 "/v1/shipments/{id}/delivered": {"post": {"operationId": "shipmentDelivered", "tags": ["fulfilment"], "parameters": [path_param("id")],
   "responses": {"200": resp("The shipment (idempotent)", ref("Shipment")), **problems(404, 409)}}},
 "/v1/orders/{id}/cancel": {"post": {"operationId": "cancelOrder", "tags": ["after-sales"], "parameters": [path_param("id")],
   "responses": {"200": resp("Cancelled; held stock released; a captured payment refunded", {"type": "object"}), **problems(404, 409)}}},
 "/v1/orders/{id}/refunds": {"post": {"operationId": "refundOrder", "tags": ["after-sales"], "parameters": [path_param("id"), idem],
   "requestBody": body({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": ref("RefundItem")}, "reason": {"type": "string"}}}),
   "responses": {"201": resp("Refunded (never above captured minus refunded)", {"type": "object"}), **problems(400, 404, 409, 422)}}},
 "/v1/orders/{id}/returns": {"post": {"operationId": "requestReturn", "tags": ["after-sales"], "parameters": [path_param("id")],
   "requestBody": body({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"line": {"type": "integer"}, "quantity": {"type": "integer"}}}}, "reason": {"type": "string"}}}),
   "responses": {"201": resp("Return authorisation, state requested", {"type": "object"}), **problems(400, 404, 409, 422)}}},
 "/v1/returns/{id}": {"get": {"operationId": "getReturn", "tags": ["after-sales"], "parameters": [path_param("id")],
   "responses": {"200": resp("The return", {"type": "object"}), **problems(404)}}},
 "/v1/returns/{id}/received": {"post": {"operationId": "returnReceived", "tags": ["after-sales"], "parameters": [path_param("id")],
   "responses": {"200": resp("State received", {"type": "object"}), **problems(404, 409)}}},
 "/v1/returns/{id}/inspection": {"post": {"operationId": "inspectReturn", "tags": ["after-sales"], "parameters": [path_param("id")],
   "requestBody": body({"type": "object", "properties": {"lines": {"type": "array", "items": {"type": "object", "properties": {"line": {"type": "integer"}, "accepted": {"type": "boolean"}}}}}}),
   "responses": {"200": resp("Inspected; accepted lines refunded and restocked", {"type": "object"}), **problems(404, 409, 422)}}},
 "/v1/webhooks": {
   "post": {"operationId": "subscribe", "tags": ["webhooks"], "security": admin,
     "requestBody": body({"type": "object", "required": ["url", "events"], "properties": {"url": {"type": "string", "format": "uri"}, "events": {"type": "array", "items": {"type": "string", "examples": ["order.*", "order.routed", "*"]}}, "secret": {"type": "string", "description": "whsec_<base64>; generated when absent"}}}),
     "responses": {"201": resp("Subscription with its signing secret", {"type": "object"}), **problems(401, 422)}},
   "get": {"operationId": "listSubscriptions", "tags": ["webhooks"], "security": admin, "responses": {"200": resp("Subscriptions (secrets redacted)", {"type": "array"}), **problems(401)}}},
 "/v1/webhooks/{id}": {
   "get": {"operationId": "getSubscription", "tags": ["webhooks"], "security": admin, "parameters": [path_param("id")], "responses": {"200": resp("Subscription", {"type": "object"}), **problems(401, 404)}},
   "delete": {"operationId": "unsubscribe", "tags": ["webhooks"], "security": admin, "parameters": [path_param("id")], "responses": {"204": {"description": "Deleted"}, **problems(401, 404)}}},
 "/v1/webhooks/{id}/deliveries": {"get": {"operationId": "deliveries", "tags": ["webhooks"], "security": admin, "parameters": [path_param("id")],
   "responses": {"200": resp("Recent deliveries: attempts, last status, delivered|pending|dead", {"type": "array"}), **problems(401, 404)}}},
 "/v1/reservations/expire": {"post": {"operationId": "expireReservations", "tags": ["admin"], "security": admin,
   "description": "Cancels orders whose payment is only authorized and whose reservation expired while still reserved or backordered, releasing their stock. Drive it with any scheduler (cron, a Kubernetes CronJob).",
   "responses": {"200": resp("Orders expired by this sweep", {"type": "object", "properties": {"expired": {"type": "array", "items": {"type": "string"}}, "pending": {"type": "integer"}}}), **problems(401)}}},
 "/v1/admin/catalog/{sku}": {"put": {"operationId": "putPrices", "tags": ["admin"], "security": admin, "parameters": [path_param("sku")],
   "requestBody": body({"type": "object", "additionalProperties": money, "examples": [{"USD": "19.99", "EUR": "18.50"}]}),
   "responses": {"200": resp("Prices stored", {"type": "object"}), **problems(401, 422)}}},
 "/v1/admin/locations": {"put": {"operationId": "putLocations", "tags": ["admin"], "security": admin,
   "requestBody": body({"type": "array", "items": ref("Location")}), "responses": {"200": resp("The network", {"type": "array"}), **problems(401, 422)}}},
 "/v1/admin/stock/{sku}/{location}": {"put": {"operationId": "putStock", "tags": ["admin"], "security": admin, "parameters": [path_param("sku"), path_param("location")],
   "requestBody": body({"type": "object", "required": ["on_hand"], "properties": {"on_hand": {"type": "integer", "minimum": 0}}}),
   "responses": {"200": resp("Stock level", {"type": "object"}), **problems(401, 409, 422)}}},
 "/v1/admin/backorder/{sku}": {"put": {"operationId": "putBackorderPolicy", "tags": ["admin"], "security": admin, "parameters": [path_param("sku")],
   "requestBody": body({"oneOf": [{"const": "never"}, {"const": "unlimited"}, {"type": "object", "properties": {"up_to": {"type": "integer"}}}]}),
   "responses": {"200": resp("Policy stored", {"type": "object"}), **problems(401, 422)}}},
 "/v1/admin/routing-policy": {"put": {"operationId": "putRoutingPolicy", "tags": ["admin"], "security": admin,
   "requestBody": body({"type": "object", "required": ["split_limit", "cost_per_km"], "properties": {"split_limit": {"type": "integer", "minimum": 1, "maximum": 10}, "cost_per_km": money}}),
   "responses": {"200": resp("Policy stored", {"type": "object"}), **problems(401, 422)}}},
}

schemas = {
 "Problem": {"type": "object", "description": "RFC 9457 problem details", "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
   "invalid-params": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string", "description": "JSON Pointer or header"}, "code": {"type": "string"}, "reason": {"type": "string"}}}}}},
 "Money": {"type": "object", "properties": {"amount": money, "currency": {"type": "string"}}},
 "Accepted": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "status": {"const": "validated"}, "links": {"type": "object"}}},
 "OrderRequest": {"type": "object", "additionalProperties": False, "required": ["channel", "customer", "currency", "lines", "shipping", "tax", "totals", "payment"], "properties": {
   "channel": {"type": "string"}, "customer": {"type": "object", "properties": {"email": {"type": "string", "format": "email"}, "name": {"type": "string"}}},
   "currency": {"type": "string", "examples": ["USD"]},
   "lines": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["sku", "quantity", "unit_price"], "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1, "maximum": 10000}, "unit_price": money, "discount": money}}},
   "shipping": {"type": "object", "properties": {"method": {"enum": ["standard", "express", "pickup"]}, "amount": money, "pickup_location": {"type": "string"},
     "address": {"type": "object", "properties": {"country": {"type": "string"}, "postal_code": {"type": "string"}, "line1": {"type": "string"}, "line2": {"type": "string"}, "city": {"type": "string"}, "region": {"type": "string"}, "coordinates": {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}}}}}},
   "discounts": {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"}, "amount": money}}},
   "tax": money,
   "totals": {"type": "object", "description": "checked exactly against the recomputed totals", "properties": {k: money for k in ["subtotal", "discount", "shipping", "tax", "grand_total"]}},
   "payment": {"type": "object", "properties": {"reference": {"type": "string"}, "status": {"enum": ["authorized", "captured"]}, "amount": money}},
   "metadata": {"type": "object", "additionalProperties": {"type": "string"}}}},
 "OrderView": {"type": "object", "properties": {"id": {"type": "string"}, "status": {"enum": ["validated", "reserved", "backordered", "rejected", "routed", "partially_shipped", "shipped", "delivered", "cancelled", "partially_refunded", "refunded"]},
   "lines": {"type": "array"}, "totals": {"type": "object"}, "reservation": {"type": ["object", "null"]}, "plan": {"type": ["object", "null"]}, "shipments": {"type": "array", "items": ref("Shipment")},
   "refunds": {"type": "array"}, "refunded_total": ref("Money"), "refundable": ref("Money"), "returns": {"type": "array"}, "reason": {"type": ["string", "null"]}}},
 "Shipment": {"type": "object", "properties": {"id": {"type": "string"}, "location": {"type": "string"}, "lines": {"type": "array"}, "status": {"enum": ["allocated", "shipped", "delivered"]}, "carrier": {"type": "string"}, "tracking": {"type": "string"}}},
 "Event": {"type": "object", "properties": {"version": {"type": "integer"}, "id": {"type": "string"}, "type": {"type": "string", "examples": ["order.validated"]}, "order_id": {"type": "string"}, "sequence": {"type": "integer"}, "occurred_at": {"type": "string", "format": "date-time"}, "data": {"type": "object"}}},
 "Availability": {"type": "object", "properties": {"sku": {"type": "string"}, "on_hand": {"type": "integer"}, "reserved": {"type": "integer"}, "allocated": {"type": "integer"}, "available": {"type": "integer"}, "locations": {"type": "array"}}},
 "Location": {"type": "object", "required": ["id", "kind", "coordinates"], "properties": {"id": {"type": "string"}, "kind": {"enum": ["warehouse", "store", "3pl", "dropship"]}, "coordinates": {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}},
   "cost_per_shipment": money, "cost_per_unit": money, "ships": {"type": "boolean"}, "pickup": {"type": "boolean"}, "priority": {"type": "integer"}}},
 "RefundItem": {"oneOf": [
   {"type": "object", "required": ["kind", "line", "quantity"], "properties": {"kind": {"const": "line"}, "line": {"type": "integer"}, "quantity": {"type": "integer"}}},
   {"type": "object", "required": ["kind"], "properties": {"kind": {"const": "shipping"}}},
   {"type": "object", "required": ["kind", "amount"], "properties": {"kind": {"const": "amount"}, "amount": money}}]},
}

doc = {"openapi": "3.1.0",
  "info": {"title": "Edge OMS", "version": "0.1.0", "description": "Order management at the edge. Errors are RFC 9457 application/problem+json naming the offending field. Events (webhooks) follow Standard Webhooks."},
  "servers": [{"url": "http://127.0.0.1:3000"}],
  "paths": paths,
  "components": {"schemas": schemas, "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer", "description": "the admin_token Spin variable"}}}}
out = pathlib.Path(__file__).resolve().parent.parent / "functions/query/openapi.json"
out.write_text(json.dumps(doc, indent=1) + "\n")
print(f"wrote {out}")
