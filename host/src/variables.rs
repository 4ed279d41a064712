//! Spin variables: application variables (`[variables]`, defaults, `SPIN_VARIABLE_<NAME>` from
//! the environment) rendered into each component's `[component.x.variables]` templates. Resolved
//! once at start so a missing required value fails before the first request. Values of secret
//! variables never reach the logs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::bindings::fermyon::spin2_0_0::variables;
use crate::manifest::App;
use crate::Error;

/// A `{{ name }}` template over application variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
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
        Ok(Template { parts })
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
}

/// Resolved values for every component: component id → variable name → value.
#[derive(Debug, Default)]
pub struct ResolvedVariables {
    by_component: HashMap<String, Arc<BTreeMap<String, String>>>,
    app: HashMap<String, String>,
}

impl ResolvedVariables {
    /// Resolves every application variable (environment `SPIN_VARIABLE_<NAME>` over default)
    /// and renders every component's templates.
    ///
    /// # Errors
    /// [`Error::Variable`] when a required variable has no value.
    pub fn resolve(app: &App, env: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut values = HashMap::new();
        for (name, decl) in &app.variables {
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
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
        Ok(ResolvedVariables {
            by_component,
            app: values,
        })
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
        let app = App::parse(std::path::Path::new("spin.toml"), text, &[]).unwrap();
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
}
