//! Spin variables: application variables (`[variables]`, defaults, `SPIN_VARIABLE_<NAME>` from
//! the environment) rendered into the manifest's templates: each component's
//! `[component.x.variables]` and `allowed_outbound_hosts`, each Redis trigger's `address`.
//! Resolved once at start so a missing required value or a host pattern that renders badly
//! fails before the first request. Values of secret variables never reach the logs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::bindings::fermyon::spin2_0_0::variables;
use crate::manifest::App;
use crate::outbound::AllowedHosts;
use crate::Error;

/// A `{{ name }}` template over application variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

impl Template {
    /// Parses a template.
    ///
    /// # Errors
    /// A message for an unclosed `{{` or an empty or malformed variable reference.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed '{{{{' in {s:?}"))?;
            let name = after[..end].trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(format!(
                    "bad variable reference {{{{{}}}}} in {s:?}",
                    &after[..end]
                ));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            source: s.to_string(),
            parts,
        })
    }

    /// Whether it refers to no variable (its text is its value).
    pub fn is_literal(&self) -> bool {
        self.references().next().is_none()
    }

    /// The application variables the template refers to.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Renders with resolved application values (every reference must be present).
    pub fn render(&self, values: &HashMap<String, String>) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.as_str(),
                Part::Var(v) => values.get(v).map(String::as_str).unwrap_or_default(),
            })
            .collect()
    }

    /// Renders with resolved application values.
    ///
    /// # Errors
    /// A message naming the first variable referred to that has no value.
    pub fn try_render(&self, values: &HashMap<String, String>) -> Result<String, String> {
        match self.references().find(|r| !values.contains_key(*r)) {
            Some(missing) => Err(format!(
                "{:?} refers to variable {missing:?}, which has no value (no default, and \
                 {} is not set)",
                self.source,
                env_name(missing)
            )),
            None => Ok(self.render(values)),
        }
    }
}

impl std::fmt::Display for Template {
    /// The template as written.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// The environment variable that gives application variable `name` its value
/// (`SPIN_VARIABLE_<NAME>`).
pub fn env_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

/// What the manifest's templates come to with the application variables' values: each
/// component's variables (id → name → value) and outbound grant, each Redis trigger's address.
#[derive(Default)]
pub struct ResolvedVariables {
    by_component: HashMap<String, Arc<BTreeMap<String, String>>>,
    allowed_hosts: HashMap<String, Arc<AllowedHosts>>,
    redis_addresses: Vec<String>,
    app: HashMap<String, String>,
}

impl ResolvedVariables {
    /// Resolves every application variable (environment `SPIN_VARIABLE_<NAME>` over default)
    /// and renders every template of the manifest.
    ///
    /// # Errors
    /// [`Error::Variable`] when a required variable has no value; [`Error::Manifest`] naming the
    /// field when an `allowed_outbound_hosts` entry or a Redis trigger address refers to a
    /// variable without a value, or an entry renders to something that is not a host pattern.
    pub fn resolve(app: &App, env: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut values = HashMap::new();
        for (name, decl) in &app.variables {
            let env_name = env_name(name);
            match env(&env_name).or_else(|| decl.default.clone()) {
                Some(v) => {
                    let shown = if decl.secret { "<secret>" } else { v.as_str() };
                    tracing::debug!(variable = %name, value = %shown, "variable resolved");
                    values.insert(name.clone(), v);
                }
                None if decl.required => {
                    return Err(Error::Variable(format!(
                        "variable {name:?} is required but has no value: set {env_name}"
                    )))
                }
                None => {}
            }
        }
        let mut by_component = HashMap::new();
        for (id, c) in &app.components {
            let rendered = c
                .variables
                .iter()
                .filter(|(_, t)| t.references().all(|r| values.contains_key(r)))
                .map(|(k, t)| (k.clone(), t.render(&values)))
                .collect();
            by_component.insert(id.clone(), Arc::new(rendered));
        }
        let field_error = |field: String, message: String| Error::Manifest {
            file: app.file.clone(),
            field,
            message,
        };
        let is_secret = |name: &str| app.variables.get(name).is_some_and(|d| d.secret);
        let mut allowed_hosts = HashMap::new();
        for (id, c) in &app.components {
            let hosts = c
                .allowed_outbound_hosts
                .render(&values, is_secret)
                .map_err(|(i, m)| {
                    field_error(format!("component.{id}.allowed_outbound_hosts[{i}]"), m)
                })?;
            allowed_hosts.insert(id.clone(), Arc::new(hosts));
        }
        let redis_addresses = app
            .redis_triggers
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.address
                    .try_render(&values)
                    .map_err(|m| field_error(format!("trigger.redis[{i}].address"), m))
            })
            .collect::<Result<_, _>>()?;
        Ok(ResolvedVariables {
            by_component,
            allowed_hosts,
            redis_addresses,
            app: values,
        })
    }

    /// A component's outbound grant (`allowed_outbound_hosts`, rendered).
    pub fn allowed_hosts(&self, id: &str) -> Arc<AllowedHosts> {
        self.allowed_hosts.get(id).cloned().unwrap_or_default()
    }

    /// The address of each `[[trigger.redis]]`, rendered, in the order of
    /// [`App::redis_triggers`].
    pub fn redis_addresses(&self) -> &[String] {
        &self.redis_addresses
    }

    /// A component's variables, for its per-request state.
    pub fn for_component(&self, id: &str) -> Arc<BTreeMap<String, String>> {
        self.by_component.get(id).cloned().unwrap_or_default()
    }

    /// Application values, for rendering other templates (e.g. allowed hosts).
    pub fn app_values(&self) -> &HashMap<String, String> {
        &self.app
    }
}

impl std::fmt::Debug for ResolvedVariables {
    /// The variables that have a value, by name; values (secret or not) are left out so that
    /// no debug output can carry a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.app.keys().collect();
        names.sort();
        f.debug_struct("ResolvedVariables")
            .field("resolved", &names)
            .finish_non_exhaustive()
    }
}

/// Per-request variables capability: the component's resolved variables.
pub struct VariablesCtx {
    /// name → value.
    pub values: Arc<BTreeMap<String, String>>,
}

impl variables::Host for VariablesCtx {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Ok(Err(variables::Error::InvalidName(name)));
        }
        Ok(self
            .values
            .get(&name)
            .cloned()
            .ok_or(variables::Error::Undefined(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_and_reject_bad_syntax() {
        let t = Template::parse("Bearer {{ token }}!").unwrap();
        assert_eq!(t.references().collect::<Vec<_>>(), ["token"]);
        let values = HashMap::from([("token".to_string(), "abc".to_string())]);
        assert_eq!(t.render(&values), "Bearer abc!");
        assert!(Template::parse("{{ token").is_err());
        assert!(Template::parse("{{ Token }}").is_err());
    }

    #[test]
    fn environment_overrides_default_and_required_must_be_set() {
        let text = r#"
spin_manifest_version = 2
[application]
name = "v"
[variables]
greeting = { default = "hello" }
token = { required = true, secret = true }
[component.c]
source = "c.wasm"
[component.c.variables]
greeting = "{{ greeting }}, world"
auth = "{{ token }}"
"#;
        let app = App::parse(std::path::Path::new("spin.toml"), text).unwrap();
        let err = ResolvedVariables::resolve(&app, |_| None).unwrap_err();
        assert!(err.to_string().contains("SPIN_VARIABLE_TOKEN"), "{err}");
        let env = |k: &str| match k {
            "SPIN_VARIABLE_TOKEN" => Some("s3cret".to_string()),
            "SPIN_VARIABLE_GREETING" => Some("hi".to_string()),
            _ => None,
        };
        let resolved = ResolvedVariables::resolve(&app, env).unwrap();
        let c = resolved.for_component("c");
        assert_eq!(c["greeting"], "hi, world");
        assert_eq!(c["auth"], "s3cret");
    }

    const REDIS: &str = r#"
spin_manifest_version = 2
[application]
name = "r"
[application.trigger.redis]
address = "{{ redis_address }}"
[variables]
redis_address = { default = "redis://127.0.0.1:6379" }
extra_host = { default = "" }
[[trigger.redis]]
channel = "orders"
component = "c"
[component.c]
source = "c.wasm"
allowed_outbound_hosts = ["{{ redis_address }}", "{{ extra_host }}", "https://api.example.com"]
"#;

    fn resolve(text: &str, env: &[(&str, &str)]) -> Result<ResolvedVariables, Error> {
        let app = App::parse(std::path::Path::new("spin.toml"), text).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ResolvedVariables::resolve(&app, |k| env.get(k).cloned())
    }

    #[test]
    fn trigger_addresses_and_outbound_hosts_render_with_defaults_or_environment() {
        let defaults = resolve(REDIS, &[]).unwrap();
        assert_eq!(defaults.redis_addresses(), ["redis://127.0.0.1:6379"]);
        let hosts = defaults.allowed_hosts("c");
        assert!(hosts.allows("redis", "127.0.0.1", 6379));
        assert!(hosts.allows("https", "api.example.com", 443));
        // The empty `extra_host` is left out, as Spin does.
        assert_eq!(
            hosts.describe(),
            "redis://127.0.0.1:6379, https://api.example.com"
        );

        let env = [("SPIN_VARIABLE_REDIS_ADDRESS", "redis://redis.internal:6380")];
        let switched = resolve(REDIS, &env).unwrap();
        assert_eq!(switched.redis_addresses(), ["redis://redis.internal:6380"]);
        let hosts = switched.allowed_hosts("c");
        assert!(hosts.allows("redis", "redis.internal", 6380));
        assert!(!hosts.allows("redis", "127.0.0.1", 6379));
    }

    fn manifest_error(r: Result<ResolvedVariables, Error>) -> (String, String) {
        match r {
            Err(Error::Manifest { field, message, .. }) => (field, message),
            other => panic!("expected a manifest error, got {other:?}"),
        }
    }

    #[test]
    fn a_rendered_host_that_is_no_pattern_names_the_field_and_the_value() {
        let env = [(
            "SPIN_VARIABLE_REDIS_ADDRESS",
            "redis://redis.internal:6379/0",
        )];
        let (field, message) = manifest_error(resolve(REDIS, &env));
        assert_eq!(field, "component.c.allowed_outbound_hosts[0]");
        assert!(
            message
                .contains("\"{{ redis_address }}\" renders to \"redis://redis.internal:6379/0\"")
                && message.contains("path"),
            "{message}"
        );

        // Credentials are refused as Spin refuses them; a secret's value is not shown.
        let secret = REDIS.replace(
            "redis_address = { default = \"redis://127.0.0.1:6379\" }",
            "redis_address = { required = true, secret = true }",
        );
        let env = [("SPIN_VARIABLE_REDIS_ADDRESS", "redis://:hunter2@db:6379")];
        let (field, message) = manifest_error(resolve(&secret, &env));
        assert_eq!(field, "component.c.allowed_outbound_hosts[0]");
        assert!(message.contains("credentials"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_template_over_a_variable_without_value_names_the_field() {
        let unset = REDIS.replace("extra_host = { default = \"\" }", "extra_host = {}");
        let (field, message) = manifest_error(resolve(&unset, &[]));
        assert_eq!(field, "component.c.allowed_outbound_hosts[1]");
        assert!(message.contains("SPIN_VARIABLE_EXTRA_HOST"), "{message}");

        let unset = REDIS
            .replace(
                "address = \"{{ redis_address }}\"",
                "address = \"{{ extra_host }}\"",
            )
            .replace("extra_host = { default = \"\" }", "extra_host = {}")
            .replace("\"{{ extra_host }}\", ", "");
        let (field, _) = manifest_error(resolve(&unset, &[]));
        assert_eq!(field, "trigger.redis[0].address");
    }
}
