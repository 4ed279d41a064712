#!/usr/bin/env python3
"""Checks the deployment files under infra/ before anything reaches a cluster.

Run it through scripts/check-infra.sh (which provides the pinned jsonschema and PyYAML).

Every `kind: SpinApp` document is validated against the SpinApp CRD's schema
(infra/schemas/spinapp-v1alpha1.json), closed the way the API server treats unknown fields
under kubectl's default strict field validation. A SpinApp that passes the schema is then held
to what the operator's admission webhook and this app need:

- `replicas` >= 1 unless `enableAutoscaling` is true, and no `replicas` when it is;
- `executor` names a SpinAppExecutor under infra/ or the stock `containerd-shim-spin`;
- each `components` entry names a spin.toml component, and every spin.toml component with a
  trigger containerd-shim-spin runs is deployed by exactly one SpinApp (two would both run its
  triggers: every message twice); none deployed has a trigger the shim does not run (cron);
- each variable is declared in spin.toml, secret ones come from a Secret, and every required
  variable without a default is bound;
- every key-value store its components open is configured in `runtimeConfig` (otherwise each
  pod gets a store of its own instead of the shared Redis), and no two Redis stores share one
  Redis database (Spin's Redis key-value keeps no per-label namespace: `get-keys` of one store
  would list the other's keys, e.g. the reconciler would take orders for owed-work entries);
- an autoscaled SpinApp has an autoscaler (HorizontalPodAutoscaler or KEDA ScaledObject), and
  every autoscaler targets an autoscaled SpinApp (otherwise it fights the operator).

A runtime-config TOML file under infra/ (for `spin up --runtime-config-file`) must define
every key-value store label spin.toml grants besides `default` (Spin stops at start with
"unknown key_value_stores label" otherwise), with the same one-database-per-Redis-store rule.

Every other YAML/TOML/JSON file under infra/ must parse (YAML duplicate keys rejected, as
kubectl does); every `secretKeyRef` must name a key of a Secret under infra/; an Ingress must
send each spin.toml route it matches to the SpinApp that deploys the route's component.

Redis addresses: spin.toml must not name a loopback Redis literally (a Redis trigger address or
an allowed_outbound_hosts entry): in a pod that is the pod itself. They come from variables
(`{{ redis_address }}`), so a SpinApp whose components subscribe or publish through a variable
with a loopback default must bind it, and a value it binds (literally or from a Secret under
infra/) that goes into allowed_outbound_hosts must be `redis://host[:port]`: Spin refuses
credentials and a path there.

With --expect-fail DIR, every data file in DIR must be rejected for exactly the reasons its
`# expect-error: <text>` lines give: each text appears in some failure, and each failure
contains one of the texts.

Each failure prints as `file: document N: $.json.path: message`; the last line is
`infra: N passed, M failed`; the exit status is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import re
import sys
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
MANIFEST = ROOT / "spin.toml"
SCHEMA = INFRA / "schemas" / "spinapp-v1alpha1.json"
SPINAPP_API = "core.spinkube.dev/v1alpha1"
STOCK_EXECUTOR = "containerd-shim-spin"
# The trigger types containerd-shim-spin runs; a pod whose components have any other (cron)
# does not start ("Only Http, Redis, MQTT, SQS, and Command triggers are currently supported").
SHIM_TRIGGERS = {"http", "redis", "mqtt", "sqs", "command"}
DATA_SUFFIXES = {".yaml", ".yml", ".toml", ".json"}
# The operator names the Deployment and the Service after the SpinApp: a Service name is a
# DNS-1035 label.
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
TEMPLATE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
LOOPBACK = re.compile(r"^rediss?://([^@/]*@)?(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/.*)?$")


@dataclass
class Failure:
    file: str
    doc: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: document {self.doc}: {self.path}: {self.message}"


def json_path(parts) -> str:
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# --- loading ------------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; kubectl refuses the document. So do we."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def yaml_error(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    return f"cannot parse YAML: {problem}{where}"


def load(path: Path) -> tuple[list, list[Failure]]:
    """The file's documents (YAML: one per `---`, None for an empty one; TOML/JSON: one)."""
    name = rel(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return [], [Failure(name, 0, "$", f"cannot read: {e}")]
    if path.suffix in (".yaml", ".yml"):
        docs: list = []
        try:
            for doc in yaml.load_all(text, Loader=StrictLoader):
                docs.append(doc)
        except yaml.YAMLError as e:
            return docs, [Failure(name, len(docs), "$", yaml_error(e))]
        return docs, []
    try:
        if path.suffix == ".toml":
            return [tomllib.loads(text)], []
        return [json.loads(text)], []
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        return [], [Failure(name, 0, "$", f"cannot parse {kind}: {e}")]


def data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES)


# --- the app (spin.toml) --------------------------------------------------------------------


@dataclass
class App:
    components: dict[str, dict]
    variables: dict[str, dict]
    http_routes: list[tuple[str, str]]  # (route, component)
    redis_components: set[str]
    trigger_types: dict[str, set[str]]  # component -> the types of its triggers
    trigger_addresses: list[tuple[list, str]]  # (where in spin.toml, address)
    redis_addresses: dict[str, list[str]]  # component -> the addresses its Redis triggers use

    @classmethod
    def load(cls, path: Path) -> App:
        manifest = tomllib.loads(path.read_text(encoding="utf-8"))
        triggers = manifest.get("trigger", {})
        http = [
            (t["route"], t["component"])
            for t in triggers.get("http", [])
            if isinstance(t.get("route"), str) and isinstance(t.get("component"), str)
        ]
        redis = triggers.get("redis", [])
        types = defaultdict(set)
        for trigger_type, entries in triggers.items():
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict) and isinstance(entry.get("component"), str):
                    types[entry["component"]].add(trigger_type)
        addresses = []
        app_address = manifest.get("application", {}).get("trigger", {}).get("redis", {}).get("address")
        if app_address:
            addresses.append((["application", "trigger", "redis", "address"], app_address))
        used = defaultdict(list)
        for i, t in enumerate(redis):
            if "address" in t:
                addresses.append((["trigger", "redis", i, "address"], t["address"]))
            address = t.get("address", app_address)
            if isinstance(t.get("component"), str) and isinstance(address, str):
                used[t["component"]].append(address)
        return cls(
            components=manifest.get("component", {}),
            variables=manifest.get("variables", {}),
            http_routes=http,
            redis_components={t["component"] for t in redis if isinstance(t.get("component"), str)},
            trigger_types=dict(types),
            trigger_addresses=addresses,
            redis_addresses=dict(used),
        )

    def required_variables(self) -> list[str]:
        return sorted(
            name for name, decl in self.variables.items()
            if isinstance(decl, dict) and decl.get("required") and "default" not in decl
        )

    def stores_of(self, component: str) -> list[str]:
        return list(self.components.get(component, {}).get("key_value_stores", []))

    def unsupported_triggers(self, component: str) -> set[str]:
        return self.trigger_types.get(component, set()) - SHIM_TRIGGERS

    def address_variables(self, components) -> dict[str, tuple[list[str], bool]]:
        """Variable -> (who uses it, whether it goes into allowed_outbound_hosts): the variables
        the Redis trigger addresses and the allowed_outbound_hosts of `components` refer to."""
        uses: dict[str, tuple[list[str], bool]] = {}
        for component in components:
            for address in self.redis_addresses.get(component, []):
                for var in TEMPLATE.findall(address):
                    who, _ = uses.setdefault(var, ([], False))
                    if f"{component}'s Redis trigger" not in who:
                        who.append(f"{component}'s Redis trigger")
            for host in self.components.get(component, {}).get("allowed_outbound_hosts", []):
                for var in TEMPLATE.findall(host):
                    who, _ = uses.get(var, ([], False))
                    if f"{component}'s allowed_outbound_hosts" not in who:
                        who.append(f"{component}'s allowed_outbound_hosts")
                    uses[var] = (who, True)
        return uses

    def deployable(self, component: str) -> bool:
        """Whether SpinKube must run it: it has a trigger containerd-shim-spin runs."""
        return bool(self.trigger_types.get(component, set()) & SHIM_TRIGGERS)


# --- what the documents say about each other -------------------------------------------------


def namespace(doc: dict):
    meta = doc.get("metadata")
    return meta.get("namespace") if isinstance(meta, dict) else None


def name_of(doc: dict):
    meta = doc.get("metadata")
    return meta.get("name") if isinstance(meta, dict) else None


@dataclass
class Context:
    """Every Kubernetes object one check can see: the objects of one `kubectl apply`."""

    objects: list[tuple[str, int, dict]] = field(default_factory=list)  # (file, index, doc)

    def add(self, file: str, docs: list) -> None:
        for i, doc in enumerate(docs):
            if isinstance(doc, dict):
                self.objects.append((file, i, doc))

    def of_kind(self, kind: str):
        return [doc for _, _, doc in self.objects if doc.get("kind") == kind]

    def find(self, kind: str, ns, name):
        for doc in self.of_kind(kind):
            if namespace(doc) == ns and name_of(doc) == name:
                return doc
        return None

    def count(self, kind: str, ns, name) -> int:
        return sum(1 for d in self.of_kind(kind) if namespace(d) == ns and name_of(d) == name)

    def secret_keys(self, ns, name):
        doc = self.find("Secret", ns, name)
        if doc is None:
            return None
        keys = set()
        for part in ("data", "stringData"):
            if isinstance(doc.get(part), dict):
                keys.update(doc[part])
        return keys

    def autoscaler_targets(self, ns) -> set[str]:
        targets = set()
        for _, _, doc in self.objects:
            target = autoscaler_target(doc)
            if target and namespace(doc) == ns:
                targets.add(target)
        return targets


def autoscaler_target(doc: dict):
    """The Deployment an HPA or a KEDA ScaledObject scales, if the document is one."""
    if doc.get("kind") not in ("HorizontalPodAutoscaler", "ScaledObject"):
        return None
    ref = (doc.get("spec") or {}).get("scaleTargetRef") or {}
    if ref.get("kind", "Deployment") != "Deployment":
        return None
    return ref.get("name")


def deployed_components(spinapp: dict, app: App) -> list[str]:
    spec = spinapp.get("spec") or {}
    selected = spec.get("components")
    if selected is None:
        return list(app.components)
    return [c for c in selected if c in app.components]


# --- checks --------------------------------------------------------------------------------


def closed(schema):
    """The schema as the API server applies it: no field outside `properties`."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


class Checker:
    def __init__(self, schema: dict, app: App):
        jsonschema.Draft7Validator.check_schema(schema)
        self.validator = jsonschema.Draft7Validator(closed(copy.deepcopy(schema)))
        self.app = app

    # One Kubernetes object.
    def object(self, file: str, index: int, doc, ctx: Context) -> list[Failure]:
        def fail(path, message):
            return Failure(file, index, json_path(path), message)

        if not isinstance(doc, dict):
            return [fail([], "a document must be a mapping (a Kubernetes object)")]
        out = []
        for key in ("apiVersion", "kind"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                out.append(fail([key], f"every Kubernetes object needs {key}"))
        kind, ns, name = doc.get("kind"), namespace(doc), name_of(doc)
        if not isinstance(name, str) or not name:
            out.append(fail(["metadata", "name"], "every Kubernetes object needs metadata.name"))
        elif ctx.count(kind, ns, name) > 1:
            out.append(fail(["metadata", "name"], f"two {kind}s named {name!r}: one apply overwrites the other"))
        if kind == "SpinApp":
            schema_failures = self.spinapp_schema(doc, fail)
            if schema_failures:
                # The API server checks the schema before any admission webhook runs.
                return out + schema_failures
        if kind != "Secret":
            out += self.secret_refs(doc, [], ctx, ns, fail)
        if kind == "SpinApp":
            out += self.spinapp(doc, ctx, fail)
        elif kind == "Ingress":
            out += self.ingress(doc, ctx, fail)
        elif kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            out += self.autoscaler(doc, ctx, fail)
        return out

    def spinapp_schema(self, doc: dict, fail) -> list[Failure]:
        out = []
        if doc.get("apiVersion") != SPINAPP_API:
            out.append(fail(["apiVersion"], f"a SpinApp is {SPINAPP_API}, not {doc.get('apiVersion')!r}"))
        errors = sorted(self.validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
        for error in errors:
            message = f"schema: {error.message}"
            if error.validator == "additionalProperties":
                message += " (not a SpinApp field: the API server drops it, or rejects it under strict validation)"
            out.append(fail(list(error.absolute_path), message))
        return out

    def spinapp(self, doc: dict, ctx: Context, fail) -> list[Failure]:
        app, out = self.app, []
        spec, ns, name = doc["spec"], namespace(doc), name_of(doc)
        if isinstance(name, str) and not DNS_1035.fullmatch(name):
            out.append(fail(["metadata", "name"], f"{name!r} is not a DNS-1035 label: the operator names a Service after it"))

        # The operator's admission webhook.
        autoscaled = spec.get("enableAutoscaling") is True
        replicas = spec.get("replicas")
        if autoscaled and "replicas" in spec:
            out.append(fail(["spec", "replicas"], "replicas cannot be set when enableAutoscaling is true"))
        if not autoscaled and (replicas is None or replicas < 1):
            out.append(fail(["spec", "replicas"], f"replicas must be >= 1 unless enableAutoscaling is true (got {replicas!r})"))
        executor_name = spec.get("executor")
        executor = ctx.find("SpinAppExecutor", ns, executor_name)
        if executor is None and executor_name != STOCK_EXECUTOR:
            out.append(fail(["spec", "executor"], f"no SpinAppExecutor named {executor_name!r} under infra/, and not the stock {STOCK_EXECUTOR!r}"))
        if executor is not None and not (executor.get("spec") or {}).get("createDeployment"):
            for key in ("deploymentAnnotations", "podAnnotations"):
                if spec.get(key):
                    out.append(fail(["spec", key], f"{key} can't be set when executor {executor_name!r} does not create deployments"))

        # Autoscaling needs an autoscaler.
        if autoscaled and name not in ctx.autoscaler_targets(ns):
            out.append(fail(["spec", "enableAutoscaling"], f"no HorizontalPodAutoscaler or ScaledObject under infra/ scales Deployment {name!r}: nobody would set its replicas"))

        # Components.
        selected = spec.get("components")
        if selected is not None:
            seen = set()
            for i, component in enumerate(selected):
                if component not in app.components:
                    out.append(fail(["spec", "components", i], f"no component {component!r} in spin.toml (components: {', '.join(sorted(app.components))})"))
                elif component in seen:
                    out.append(fail(["spec", "components", i], f"{component!r} listed twice"))
                seen.add(component)
        deployed = deployed_components(doc, app)
        runtime_class = (((executor or {}).get("spec") or {}).get("deploymentConfig") or {}).get("runtimeClassName")
        if runtime_class or (executor is None and executor_name == STOCK_EXECUTOR):
            for component in deployed:
                unsupported = app.unsupported_triggers(component)
                if unsupported:
                    where = ["spec", "components", selected.index(component)] if selected else ["spec"]
                    out.append(fail(where, f"component {component!r} has a {'/'.join(sorted(unsupported))} trigger, which containerd-shim-spin does not run: the pod would not start (give that trigger a component of its own, not deployed here)"))

        # Variables.
        bound = set()
        for i, var in enumerate(spec.get("variables") or []):
            var_name = var["name"]
            decl = app.variables.get(var_name)
            if decl is None:
                out.append(fail(["spec", "variables", i, "name"], f"spin.toml declares no variable {var_name!r} (variables: {', '.join(sorted(app.variables))})"))
            elif decl.get("secret") and "valueFrom" not in var:
                out.append(fail(["spec", "variables", i], f"{var_name!r} is a secret variable: bind it with valueFrom.secretKeyRef, not a literal value"))
            if var_name in bound:
                out.append(fail(["spec", "variables", i, "name"], f"{var_name!r} bound twice"))
            if "value" in var and "valueFrom" in var:
                out.append(fail(["spec", "variables", i], "value and valueFrom are exclusive"))
            bound.add(var_name)
        for var_name in app.required_variables():
            if var_name not in bound:
                out.append(fail(["spec", "variables"], f"spin.toml requires variable {var_name!r} (no default) and this SpinApp does not bind it"))

        # Redis addresses from variables: bound to the shared Redis, in a form Spin accepts.
        bindings = {var.get("name"): (i, var) for i, var in enumerate(spec.get("variables") or [])}
        for var_name, (users, in_hosts) in sorted(app.address_variables(deployed).items()):
            default = (app.variables.get(var_name) or {}).get("default")
            if var_name not in bindings:
                if isinstance(default, str) and LOOPBACK.match(default):
                    out.append(fail(["spec", "variables"], f"{', '.join(users)} use {{{{ {var_name} }}}}, whose spin.toml default {default!r} is the pod itself: bind {var_name!r} to the shared Redis"))
                continue
            i, var = bindings[var_name]
            value, source = bound_value(var, ctx, ns)
            if value is None:
                continue
            if LOOPBACK.match(value):
                out.append(fail(["spec", "variables", i], f"{var_name!r} is {source}, a loopback Redis: in a pod that is the pod itself"))
            elif in_hosts:
                problem = allowed_host_problem(value)
                if problem:
                    out.append(fail(["spec", "variables", i], f"{var_name!r} goes into allowed_outbound_hosts ({', '.join(users)}) and {source} {problem}, which Spin refuses there: use redis://host[:port]"))

        # Key-value stores: each label its components open must be the shared one.
        runtime = spec.get("runtimeConfig") or {}
        if not runtime.get("loadFromSecret"):
            stores = runtime.get("keyValueStores") or []
            configured = {}
            for i, store in enumerate(stores):
                if store["name"] in configured:
                    out.append(fail(["spec", "runtimeConfig", "keyValueStores", i, "name"], f"store {store['name']!r} configured twice"))
                configured[store["name"]] = store
                options = {o.get("name") for o in store.get("options") or []}
                if store["type"] == "redis" and "url" not in options:
                    out.append(fail(["spec", "runtimeConfig", "keyValueStores", i, "options"], "a redis store needs the option 'url'"))
            users = defaultdict(list)
            for component in deployed:
                for label in app.stores_of(component):
                    users[label].append(component)
            for label, components in sorted(users.items()):
                if label not in configured:
                    out.append(fail(["spec", "runtimeConfig", "keyValueStores"], f"store {label!r} (opened by {', '.join(components)}) is not configured: each pod would get a local store of its own instead of the shared one"))
            databases = {}
            for i, store in enumerate(stores):
                url = next((o for o in store.get("options") or [] if o.get("name") == "url"), None)
                if store.get("type") != "redis" or url is None:
                    continue
                value, _ = bound_value(url, ctx, ns)
                database = redis_database(value) if value is not None else json.dumps(url, sort_keys=True)
                if database in databases:
                    out.append(fail(["spec", "runtimeConfig", "keyValueStores", i, "options"], shared_database(databases[database], store["name"])))
                databases.setdefault(database, store["name"])
        return out

    def secret_refs(self, node, path, ctx: Context, ns, fail) -> list[Failure]:
        out = []
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "secretKeyRef" and isinstance(value, dict):
                    out += self.secret_ref(value, path + [key], ctx, ns, fail)
                else:
                    out += self.secret_refs(value, path + [key], ctx, ns, fail)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                out += self.secret_refs(value, path + [i], ctx, ns, fail)
        return out

    @staticmethod
    def secret_ref(ref: dict, path, ctx: Context, ns, fail) -> list[Failure]:
        name, key = ref.get("name"), ref.get("key")
        if not name:
            return [fail(path + ["name"], "secretKeyRef without a Secret name")]
        if ref.get("optional"):
            return []
        keys = ctx.secret_keys(ns, name)
        if keys is None:
            return [fail(path + ["name"], f"no Secret {name!r} under infra/ (the example Secret must list every key the manifests read)")]
        if key not in keys:
            return [fail(path + ["key"], f"Secret {name!r} has no key {key!r} (keys: {', '.join(sorted(keys))})")]
        return []

    def autoscaler(self, doc: dict, ctx: Context, fail) -> list[Failure]:
        target = autoscaler_target(doc)
        if target is None:
            return [fail(["spec", "scaleTargetRef"], "an autoscaler here must scale the Deployment of a SpinApp")]
        spinapp = ctx.find("SpinApp", namespace(doc), target)
        if spinapp is None:
            return [fail(["spec", "scaleTargetRef", "name"], f"no SpinApp named {target!r} under infra/")]
        if (spinapp.get("spec") or {}).get("enableAutoscaling") is not True:
            return [fail(["spec", "scaleTargetRef", "name"], f"SpinApp {target!r} does not set enableAutoscaling: the operator would keep resetting the replicas this autoscaler sets")]
        return []

    def ingress(self, doc: dict, ctx: Context, fail) -> list[Failure]:
        out = []
        for r, rule in enumerate((doc.get("spec") or {}).get("rules") or []):
            paths = ((rule or {}).get("http") or {}).get("paths") or []
            for route, component in self.app.http_routes:
                match = best_ingress_path(paths, sample_path(route))
                if match is None:
                    continue
                p, entry = match
                service = (((entry.get("backend") or {}).get("service")) or {}).get("name")
                where = ["spec", "rules", r, "http", "paths", p, "backend", "service", "name"]
                spinapp = ctx.find("SpinApp", namespace(doc), service)
                if spinapp is None:
                    out.append(fail(where, f"route {route} ({component}) goes to Service {service!r}, which no SpinApp under infra/ creates"))
                    continue
                deployed = deployed_components(spinapp, self.app)
                if component not in deployed:
                    owners = [name_of(s) for s in ctx.of_kind("SpinApp") if component in deployed_components(s, self.app)]
                    out.append(fail(where, f"route {route} ({component}) goes to {service!r}, which deploys {', '.join(deployed)}; {component} is deployed by {', '.join(owners) or 'no SpinApp'}"))
        return out

    # Files that are not Kubernetes objects.
    def runtime_config(self, file: str, doc: dict) -> list[Failure]:
        out = []
        stores = doc.get("key_value_store") or {}
        databases = {}
        for label, store in stores.items():
            path = ["key_value_store", label]
            if not isinstance(store, dict) or not isinstance(store.get("type"), str):
                out.append(Failure(file, 0, json_path(path), "a store needs a type"))
            elif store["type"] == "redis" and not re.match(r"rediss?://", str(store.get("url", ""))):
                out.append(Failure(file, 0, json_path(path + ["url"]), "a redis store needs url = \"redis://...\""))
            elif store["type"] == "redis":
                database = redis_database(store["url"])
                if database in databases:
                    out.append(Failure(file, 0, json_path(path + ["url"]), shared_database(databases[database], label)))
                databases.setdefault(database, label)
        granted = defaultdict(list)
        for component in self.app.components:
            for label in self.app.stores_of(component):
                granted[label].append(component)
        for label, components in sorted(granted.items()):
            if label != "default" and label not in stores:
                out.append(Failure(file, 0, json_path(["key_value_store"]), f"no [key_value_store.{label}] (granted to {', '.join(components)}): spin up stops with: unknown key_value_stores label \"{label}\""))
        return out

    # Across all of infra/.
    def coverage(self, ctx: Context) -> list[Failure]:
        owners = defaultdict(list)
        for doc in ctx.of_kind("SpinApp"):
            for component in deployed_components(doc, self.app):
                owners[component].append(name_of(doc))
        out = []
        for component in self.app.components:
            where = json_path(["component", component])
            if not self.app.deployable(component) and not owners[component]:
                continue  # e.g. cron only: SpinKube cannot run it, a CronJob stands in
            if not owners[component]:
                out.append(Failure("spin.toml", 0, where, f"component {component!r} is deployed by no SpinApp under infra/"))
            elif len(owners[component]) > 1:
                out.append(Failure("spin.toml", 0, where, f"component {component!r} is deployed by {', '.join(owners[component])}: each runs its triggers, so every Redis message would be handled twice"))
        return out

    def loopback_literals(self) -> list[Failure]:
        """spin.toml's Redis addresses written as a loopback literal: in a pod, the pod itself."""
        found = list(self.app.trigger_addresses)
        for component, decl in self.app.components.items():
            for i, host in enumerate(decl.get("allowed_outbound_hosts", [])):
                found.append((["component", component, "allowed_outbound_hosts", i], host))
        return [
            Failure("spin.toml", 0, json_path(where), f"{value!r} is a loopback Redis: in a SpinKube pod that is the pod itself, so triggers and publishes would miss the shared Redis; write \"{{{{ redis_address }}}}\" (a variable every SpinApp binds)")
            for where, value in found
            if isinstance(value, str) and LOOPBACK.match(value)
        ]


def bound_value(var: dict, ctx: Context, ns):
    """The value a SpinApp binds to a variable, when it can be known here (a literal, or a key
    of a Secret under infra/), and where it comes from."""
    if isinstance(var.get("value"), str):
        return var["value"], "the literal value"
    ref = (var.get("valueFrom") or {}).get("secretKeyRef") or {}
    secret = ctx.find("Secret", ns, ref.get("name"))
    if secret is None:
        return None, None
    source = f"Secret {ref.get('name')!r} key {ref.get('key')!r}"
    value = (secret.get("stringData") or {}).get(ref.get("key"))
    if value is None and isinstance((secret.get("data") or {}).get(ref.get("key")), str):
        try:
            value = base64.b64decode(secret["data"][ref["key"]]).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None, None
    return (value, source) if isinstance(value, str) else (None, None)


def redis_database(url: str) -> str:
    """Which Redis database a URL names: scheme, host, port and database number (credentials
    and defaults left out), so two spellings of one database compare equal."""
    scheme, _, rest = url.partition("://")
    authority, _, path = rest.partition("/")
    host = authority.rpartition("@")[2]
    if not re.search(r":\d+$", host):
        host += ":6379"
    db = path.split("?")[0].strip("/") or "0"
    return f"{scheme}://{host}/{db}"


def shared_database(first: str, second: str) -> str:
    return (
        f"stores {first!r} and {second!r} use the same Redis database: Spin's Redis key-value keeps "
        f"no per-label namespace (one keyspace; get-keys lists every key), so each would see the "
        f"other's keys (the reconciler would take orders for owed-work entries): give each store "
        f"its own database (redis://host:port/N) or server"
    )


def allowed_host_problem(value: str):
    """Why Spin would refuse `value` as an allowed_outbound_hosts entry (None: it would not)."""
    _, _, rest = value.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        return "carries credentials"
    if slash and path:
        return f"has a path (/{path})"
    return None


def sample_path(route: str) -> str:
    """A request path Spin's route would match: `:param` and a trailing `...` filled in."""
    parts = []
    for segment in route.strip("/").split("/"):
        parts.append("x1" if segment.startswith(":") or segment == "..." else segment)
    return "/" + "/".join(parts)


def best_ingress_path(paths: list, request: str):
    """The Ingress path that wins for `request` (Exact over Prefix, then the longest)."""
    best, best_rank = None, None
    request_parts = [p for p in request.split("/") if p]
    for i, entry in enumerate(paths):
        if not isinstance(entry, dict):
            continue
        path, kind = entry.get("path", "/"), entry.get("pathType", "Prefix")
        if kind == "Exact":
            matched = path == request
            rank = (1, len(path))
        else:  # Prefix; ImplementationSpecific read as Prefix
            prefix = [p for p in path.split("/") if p]
            matched = request_parts[: len(prefix)] == prefix
            rank = (0, len(path))
        if matched and (best_rank is None or rank > best_rank):
            best, best_rank = (i, entry), rank
    return best


# --- running -------------------------------------------------------------------------------


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0

    def record(self, label: str, failures: list[Failure]) -> None:
        if failures:
            self.failed += 1
            for failure in failures:
                print(f"FAIL {failure}")
        else:
            self.passed += 1
            print(f"ok   {label}")


def describe(file: str, index: int, doc) -> str:
    if not isinstance(doc, dict):
        return f"{file}: document {index}"
    label = f"{file}: document {index}: {doc.get('kind')} {name_of(doc)}"
    if doc.get("kind") == "SpinApp":
        spec = doc.get("spec") or {}
        components = spec.get("components") or ["(all)"]
        scale = "autoscaled" if spec.get("enableAutoscaling") else f"replicas {spec.get('replicas')}"
        label += f" [{', '.join(components)}; {scale}]"
    return label


def check_files(checker: Checker, files, ctx: Context, loaded: dict, tally: Tally | None):
    """Checks each file's documents in `ctx`; returns every failure (and records items)."""
    everything = []
    for path in files:
        name = rel(path)
        docs, parse_failures = loaded[path]
        if parse_failures:
            everything += parse_failures
            if tally:
                tally.record(name, parse_failures)
        for index, doc in enumerate(docs):
            if path.suffix in (".yaml", ".yml"):
                if doc is None:
                    continue
                failures = checker.object(name, index, doc, ctx)
                label = describe(name, index, doc)
            else:
                failures = checker.runtime_config(name, doc) if path.suffix == ".toml" else []
                label = f"{name}: parses"
            everything += failures
            if tally:
                tally.record(label, failures)
    return everything


def expect_fail(checker: Checker, folder: Path, shared: Context, tally: Tally) -> None:
    """Every file in `folder` must be rejected, for the reasons its expect-error lines give."""
    files = data_files(folder)
    if not files:
        tally.record(rel(folder), [Failure(rel(folder), 0, "$", "no bad files to check the checker with")])
    for path in files:
        name = rel(path)
        expected = re.findall(r"^\s*#\s*expect-error:\s*(.+?)\s*$", path.read_text(encoding="utf-8"), re.M)
        docs, parse_failures = load(path)
        ctx = Context(list(shared.objects))
        ctx.add(name, docs)
        failures = check_files(checker, [path], ctx, {path: (docs, parse_failures)}, None)
        problems = []
        if not expected:
            problems.append("has no '# expect-error: <text>' line")
        if not failures:
            problems.append("was accepted")
        for text in expected:
            if not any(text in str(f) for f in failures):
                problems.append(f"reported no failure containing {text!r}")
        for failure in failures:
            if not any(text in str(failure) for text in expected):
                problems.append(f"failed for an unexpected reason: {failure}")
        if problems:
            tally.record("", [Failure(name, 0, "$", f"bad file {p}") for p in problems])
        else:
            reasons = "; ".join(f"document {f.doc}: {f.path}: {f.message}" for f in failures)
            tally.record(f"{name} rejected as expected: {reasons}", [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect-fail", metavar="DIR", action="append", default=[], type=Path,
                        help="also require every data file in DIR to be rejected (repeatable)")
    args = parser.parse_args()

    checker = Checker(json.loads(SCHEMA.read_text(encoding="utf-8")), App.load(MANIFEST))
    tally = Tally()

    files = data_files(INFRA)
    loaded = {path: load(path) for path in files}
    ctx = Context()
    for path in files:
        if path.suffix in (".yaml", ".yml"):
            ctx.add(rel(path), loaded[path][0])
    check_files(checker, files, ctx, loaded, tally)
    tally.record("spin.toml: every component deployed by exactly one SpinApp", checker.coverage(ctx))
    tally.record("spin.toml: Redis addresses from variables, no loopback literal", checker.loopback_literals())

    # The checker must be able to fail: the bad files are checked as if applied next to the
    # Secrets and executors of infra/.
    shared = Context([o for o in ctx.objects if o[2].get("kind") in ("Secret", "SpinAppExecutor")])
    for folder in args.expect_fail:
        expect_fail(checker, folder if folder.is_absolute() else ROOT / folder, shared, tally)

    print(f"infra: {tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
