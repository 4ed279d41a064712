//! The served OpenAPI document is the generated one, and it covers the app.
//!
//! `UPDATE_OPENAPI=1 cargo test --release -p oms-api` rewrites `functions/query/openapi.json`.

use std::collections::BTreeSet;

use serde_json::Value;

fn generated() -> Value {
    serde_json::from_str(&oms_api::to_json()).expect("the generated document is JSON")
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            out.push((path.clone(), method.clone(), op));
        }
    }
    out
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let path = oms_api::workspace_root().join(oms_api::DOCUMENT_PATH);
    let fresh = oms_api::to_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &fresh).expect("write the document");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is not the document the code generates; run \
         `UPDATE_OPENAPI=1 cargo test --release -p oms-api` and commit it",
        path.display()
    );
}

#[test]
fn every_http_route_of_spin_toml_is_declared() {
    let manifest =
        std::fs::read_to_string(oms_api::workspace_root().join("spin.toml")).expect("spin.toml");
    let manifest: toml::Value = toml::from_str(&manifest).expect("spin.toml parses");
    let doc = generated();
    let paths: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    let routes = manifest["trigger"]["http"]
        .as_array()
        .expect("http triggers");
    assert!(!routes.is_empty());
    for trigger in routes {
        let route = trigger["route"].as_str().expect("route");
        // The console's and the storefront demo's pages are HTML for people, not the API.
        if !route.starts_with("/v1/") {
            continue;
        }
        // `/v1/orders/:id` → `/v1/orders/{id}`; a `/...` wildcard needs some path under it.
        let form: String = route
            .split('/')
            .map(|s| match s.strip_prefix(':') {
                Some(name) => format!("{{{name}}}"),
                None => s.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let covered = match form.strip_suffix("/...") {
            Some(prefix) => paths.iter().any(|p| p.starts_with(&format!("{prefix}/"))),
            None => paths.contains(&form),
        };
        assert!(covered, "spin.toml route {route} is not in the document");
    }
}

#[test]
fn operation_ids_are_unique_and_every_link_names_an_operation_and_its_parameters() {
    let doc = generated();
    let ops = operations(&doc);
    let ids: Vec<&str> = ops
        .iter()
        .map(|(p, m, op)| {
            op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{m} {p} has no operationId"))
        })
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate operationIds: {ids:?}");
    let params_of = |id: &str| -> BTreeSet<String> {
        let (_, _, op) = ops
            .iter()
            .find(|(_, _, op)| op["operationId"] == id)
            .unwrap_or_else(|| panic!("a link names the unknown operation {id}"));
        op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut links = 0;
    for (path, method, op) in &ops {
        for (status, response) in op["responses"].as_object().expect("responses") {
            let Some(declared) = response["links"].as_object() else {
                continue;
            };
            for (name, link) in declared {
                links += 1;
                let target = link["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} {status}: link {name}: {link}"));
                let known = params_of(target);
                for param in link["parameters"]
                    .as_object()
                    .expect("link parameters")
                    .keys()
                {
                    assert!(
                        known.contains(param),
                        "{method} {path} {status}: link {name} sets {param}, which {target} does not take"
                    );
                }
            }
        }
    }
    assert!(links >= 10, "ids flow through links ({links} found)");
}

#[test]
fn protected_operations_answer_401_and_403_and_public_ones_need_no_credential() {
    let doc = generated();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    for name in ["staff", "fulfilment", "customer"] {
        assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
    }
    let public = [
        "placeOrder",
        "marketplaceOrder",
        "getAvailability",
        "headAvailability",
        "getOpenApi",
        "headOpenApi",
    ];
    for (path, method, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_default();
        let responses = op["responses"].as_object().expect("responses");
        if public.contains(&id) {
            let security = op.get("security").and_then(Value::as_array);
            assert!(security.is_none_or(Vec::is_empty), "{id} is public");
            continue;
        }
        let security = op["security"].as_array();
        assert!(
            security.is_some_and(|s| !s.is_empty()),
            "{method} {path} declares no credential"
        );
        for status in ["401", "403"] {
            assert!(
                responses.contains_key(status),
                "{method} {path}: no {status}"
            );
        }
        for (status, response) in responses {
            let problem = status.starts_with('4') || status.starts_with('5');
            if problem && status != "404" && method != "head" {
                assert!(
                    response.get("$ref").is_some(),
                    "{method} {path} {status}: a shared problem response"
                );
            }
        }
    }
}
