//! Spin application manifest (`spin.toml`, `spin_manifest_version = 2`): the subset `oms up`
//! runs, parsed and checked up front so a bad manifest fails at start with the file and field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::outbound::AllowedHostTemplates;
use crate::routes::RoutePattern;
use crate::schedule::CronSchedule;
use crate::variables::Template;
use crate::Error;

/// A checked application manifest.
#[derive(Debug, Clone)]
pub struct App {
    /// The manifest file, for error messages.
    pub file: PathBuf,
    /// The folder relative paths are resolved against.
    pub dir: PathBuf,
    /// `[application] name`.
    pub name: String,
    /// `[variables]`: application variables by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[component.<id>]` by id.
    pub components: BTreeMap<String, Component>,
    /// `[[trigger.http]]` in manifest order.
    pub http_triggers: Vec<HttpTrigger>,
    /// `[[trigger.redis]]` in manifest order: every subscription of the app, also those of
    /// components another host serves (a publish fans out to all of them).
    pub redis_triggers: Vec<RedisTrigger>,
    /// `[[trigger.cron]]` in manifest order.
    pub cron_triggers: Vec<CronTrigger>,
    /// The components this host runs (`oms up -c`); `None`: all of them.
    pub served: Option<std::collections::BTreeSet<String>>,
}

/// An application variable declaration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// Value used when no provider sets one.
    #[serde(default)]
    pub default: Option<String>,
    /// Start fails when no value is provided.
    #[serde(default)]
    pub required: bool,
    /// Never logged.
    #[serde(default)]
    pub secret: bool,
}

/// A component: its Wasm source and the capabilities the manifest grants it.
#[derive(Debug, Clone)]
pub struct Component {
    /// The component id (the `[component.<id>]` key).
    pub id: String,
    /// Path of the `.wasm` file (core module or component).
    pub source: PathBuf,
    /// Key-value store labels it may open.
    pub key_value_stores: Vec<String>,
    /// Where it may send outbound HTTP requests and Redis publishes: checked templates,
    /// rendered at start ([`crate::variables::ResolvedVariables`]).
    pub allowed_outbound_hosts: AllowedHostTemplates,
    /// Its variables: name → template over application variables.
    pub variables: BTreeMap<String, Template>,
    /// Environment variables set in its WASI context.
    pub environment: BTreeMap<String, String>,
}

/// An HTTP trigger: a route served by a component.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// The route pattern.
    pub route: RoutePattern,
    /// The component id.
    pub component: String,
}

/// A Redis trigger: a channel whose messages go to a component.
#[derive(Debug, Clone)]
pub struct RedisTrigger {
    /// The Redis address (the trigger's own or the application default): a checked template
    /// over application variables, rendered at start ([`crate::variables::ResolvedVariables`]).
    pub address: Template,
    /// The channel subscribed to.
    pub channel: String,
    /// The component id.
    pub component: String,
}

/// A cron trigger (the format of Spin's cron trigger plugin): a component run on a schedule.
#[derive(Debug, Clone)]
pub struct CronTrigger {
    /// The component id.
    pub component: String,
    /// When it runs (`cron_expression`).
    pub expression: CronSchedule,
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<toml::Table>>,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
    #[serde(default)]
    trigger: RawAppTriggers,
}

#[derive(Deserialize, Default)]
struct RawAppTriggers {
    redis: Option<RawAppRedis>,
}

#[derive(Deserialize)]
struct RawAppRedis {
    address: String,
}

#[derive(Deserialize)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    #[serde(default)]
    id: Option<String>,
    route: toml::Value,
    component: String,
    #[serde(default)]
    executor: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCronTrigger {
    #[serde(default)]
    id: Option<String>,
    component: String,
    cron_expression: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedisTrigger {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    address: Option<String>,
    channel: String,
    component: String,
}

impl App {
    /// Reads and checks a manifest file.
    ///
    /// # Errors
    /// [`Error::Manifest`] naming the file and the offending field for anything malformed or
    /// inconsistent (unknown component, bad route, bad cron expression, undeclared variable, bad
    /// host pattern, unsupported trigger type). Whether the key-value stores it grants exist
    /// is the runtime config's business ([`crate::runtime_config::RuntimeConfig::check_granted`]).
    pub fn load(file: &Path) -> Result<App, Error> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::Manifest {
            file: file.to_path_buf(),
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(file, &text)
    }

    /// Parses and checks manifest text (see [`App::load`]).
    ///
    /// # Errors
    /// As [`App::load`].
    pub fn parse(file: &Path, text: &str) -> Result<App, Error> {
        let err = |field: &str, message: String| Error::Manifest {
            file: file.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            err(
                "",
                e.to_string()
                    .trim_end()
                    .replace("TOML parse error", "invalid manifest"),
            )
        })?;
        if raw.spin_manifest_version.as_integer() != Some(2) {
            return Err(err(
                "spin_manifest_version",
                format!(
                    "only manifest version 2 is supported (got {})",
                    raw.spin_manifest_version
                ),
            ));
        }
        let dir = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        for (name, decl) in &raw.variables {
            check_variable_name(name).map_err(|m| err(&format!("variables.{name}"), m))?;
            if decl.required && decl.default.is_some() {
                return Err(err(
                    &format!("variables.{name}"),
                    "a variable cannot be both required and have a default".into(),
                ));
            }
        }

        let mut components = BTreeMap::new();
        for (id, c) in raw.component {
            let field = |f: &str| format!("component.{id}.{f}");
            let source = match &c.source {
                toml::Value::String(s) => dir.join(s),
                other => {
                    return Err(err(
                        &field("source"),
                        format!("only a local file path is supported (got {other})"),
                    ))
                }
            };
            let mut variables = BTreeMap::new();
            for (name, template) in &c.variables {
                let f = format!("{}.{name}", field("variables"));
                check_variable_name(name).map_err(|m| err(&f, m))?;
                let t = Template::parse(template).map_err(|m| err(&f, m))?;
                check_declared(&raw.variables, t.references()).map_err(|m| err(&f, m))?;
                variables.insert(name.clone(), t);
            }
            let hosts_field = |i: usize| format!("{}[{i}]", field("allowed_outbound_hosts"));
            let allowed_outbound_hosts = AllowedHostTemplates::parse(&c.allowed_outbound_hosts)
                .map_err(|(i, m)| err(&hosts_field(i), m))?;
            for (i, var) in allowed_outbound_hosts.references() {
                check_declared(&raw.variables, [var]).map_err(|m| err(&hosts_field(i), m))?;
            }
            components.insert(
                id.clone(),
                Component {
                    id: id.clone(),
                    source,
                    key_value_stores: c.key_value_stores,
                    allowed_outbound_hosts,
                    variables,
                    environment: c.environment,
                },
            );
        }

        let component_ref = |field: &str, id: &str| -> Result<String, Error> {
            if components.contains_key(id) {
                Ok(id.to_string())
            } else {
                let known: Vec<&str> = components.keys().map(String::as_str).collect();
                Err(err(
                    field,
                    format!(
                        "no component named {id:?} (components: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ))
            }
        };

        let address_template = |field: &str, address: &str| -> Result<Template, Error> {
            let t = Template::parse(address).map_err(|m| err(field, m))?;
            check_declared(&raw.variables, t.references()).map_err(|m| err(field, m))?;
            Ok(t)
        };
        let app_redis = match &raw.application.trigger.redis {
            Some(r) => Some(address_template(
                "application.trigger.redis.address",
                &r.address,
            )?),
            None => None,
        };
        let mut http_triggers: Vec<HttpTrigger> = Vec::new();
        let mut redis_triggers = Vec::new();
        let mut cron_triggers = Vec::new();
        for (kind, triggers) in raw.trigger {
            for (i, table) in triggers.into_iter().enumerate() {
                let field = format!("trigger.{kind}[{i}]");
                match kind.as_str() {
                    "http" => {
                        let t: RawHttpTrigger = toml::Value::Table(table)
                            .try_into()
                            .map_err(|e: toml::de::Error| err(&field, e.message().to_string()))?;
                        let _ = (&t.id, &t.executor);
                        let route = match &t.route {
                            toml::Value::String(r) => RoutePattern::parse(r)
                                .map_err(|m| err(&format!("{field}.route"), m))?,
                            other => {
                                return Err(err(
                                    &format!("{field}.route"),
                                    format!("expected a route string (got {other})"),
                                ))
                            }
                        };
                        if let Some(dup) = http_triggers.iter().find(|h| h.route == route) {
                            return Err(err(
                                &format!("{field}.route"),
                                format!(
                                    "route {route} is already served by component {:?}",
                                    dup.component
                                ),
                            ));
                        }
                        let component = component_ref(&format!("{field}.component"), &t.component)?;
                        http_triggers.push(HttpTrigger { route, component });
                    }
                    "redis" => {
                        let t: RawRedisTrigger = toml::Value::Table(table)
                            .try_into()
                            .map_err(|e: toml::de::Error| err(&field, e.message().to_string()))?;
                        let _ = &t.id;
                        let address = match &t.address {
                            Some(a) => address_template(&format!("{field}.address"), a)?,
                            None => app_redis.clone().ok_or_else(|| {
                                err(
                                    &format!("{field}.address"),
                                    "no address: set it here or in [application.trigger.redis]"
                                        .into(),
                                )
                            })?,
                        };
                        if t.channel.is_empty() {
                            return Err(err(
                                &format!("{field}.channel"),
                                "must not be empty".into(),
                            ));
                        }
                        let component = component_ref(&format!("{field}.component"), &t.component)?;
                        redis_triggers.push(RedisTrigger {
                            address,
                            channel: t.channel,
                            component,
                        });
                    }
                    "cron" => {
                        let t: RawCronTrigger = toml::Value::Table(table)
                            .try_into()
                            .map_err(|e: toml::de::Error| err(&field, e.message().to_string()))?;
                        let _ = &t.id;
                        let expression = CronSchedule::parse(&t.cron_expression)
                            .map_err(|m| err(&format!("{field}.cron_expression"), m))?;
                        let component = component_ref(&format!("{field}.component"), &t.component)?;
                        cron_triggers.push(CronTrigger {
                            component,
                            expression,
                        });
                    }
                    other => {
                        return Err(err(
                            &format!("trigger.{other}"),
                            "unsupported trigger type: oms up runs http, redis and cron triggers"
                                .into(),
                        ))
                    }
                }
            }
        }
        Ok(App {
            file: file.to_path_buf(),
            dir,
            name: raw.application.name,
            variables: raw.variables,
            components,
            http_triggers,
            redis_triggers,
            cron_triggers,
            served: None,
        })
    }

    /// Every key-value store label a component this host runs is granted (`key_value_stores`).
    pub fn granted_stores(&self) -> std::collections::BTreeSet<&str> {
        self.components
            .values()
            .filter(|c| self.serves(&c.id))
            .flat_map(|c| c.key_value_stores.iter().map(String::as_str))
            .collect()
    }

    /// Narrows the app to the components a host runs, as `spin up --component-id` does: only
    /// their HTTP routes are served, only their subscriptions consumed and their schedules
    /// run, only they are loaded. Every component must exist.
    ///
    /// # Errors
    /// [`Error::Manifest`] naming an unknown component id.
    pub fn select(&mut self, ids: &[String]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        for id in ids {
            if !self.components.contains_key(id) {
                let known: Vec<&str> = self.components.keys().map(String::as_str).collect();
                return Err(Error::Manifest {
                    file: self.file.clone(),
                    field: "--component-id".into(),
                    message: format!(
                        "no component named {id:?} (components: {})",
                        known.join(", ")
                    ),
                });
            }
        }
        let served: std::collections::BTreeSet<String> = ids.iter().cloned().collect();
        self.http_triggers.retain(|t| served.contains(&t.component));
        self.cron_triggers.retain(|t| served.contains(&t.component));
        self.served = Some(served);
        Ok(())
    }

    /// Whether this host runs component `id`.
    pub fn serves(&self, id: &str) -> bool {
        self.served.as_ref().is_none_or(|s| s.contains(id))
    }
}

/// Templates may refer to application variables only (as in Spin), and only declared ones.
fn check_declared<'a>(
    variables: &BTreeMap<String, VariableDecl>,
    references: impl IntoIterator<Item = &'a str>,
) -> Result<(), String> {
    match references
        .into_iter()
        .find(|var| !variables.contains_key(*var))
    {
        Some(var) => Err(format!("refers to undeclared application variable {var:?}")),
        None => Ok(()),
    }
}

/// Spin's rule for variable names: lowercase ASCII letters, digits and underscores, starting
/// with a letter.
fn check_variable_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid variable name {name:?}: use lowercase letters, digits and '_', starting \
             with a letter"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[application.trigger.redis]
address = "redis://127.0.0.1:6379"
[variables]
token = { required = true, secret = true }
greeting = { default = "hi" }
[[trigger.http]]
route = "/api/..."
component = "web"
[[trigger.redis]]
channel = "orders"
component = "worker"
[[trigger.cron]]
component = "worker"
cron_expression = "1/2 * * * * *"
[component.web]
source = "web.wasm"
key_value_stores = ["default"]
allowed_outbound_hosts = ["https://api.example.com"]
[component.web.variables]
auth = "Bearer {{ token }}"
[component.worker]
source = "worker.wasm"
"#;

    fn parse(text: &str) -> Result<App, Error> {
        App::parse(Path::new("dir/spin.toml"), text)
    }

    #[test]
    fn parses_a_good_manifest() {
        let app = parse(GOOD).unwrap();
        assert_eq!(app.http_triggers.len(), 1);
        assert_eq!(
            app.redis_triggers[0].address.to_string(),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(app.components["web"].source, Path::new("dir/web.wasm"));
        assert_eq!(app.cron_triggers.len(), 1);
        assert_eq!(app.cron_triggers[0].component, "worker");
        assert_eq!(app.cron_triggers[0].expression.as_str(), "1/2 * * * * *");
    }

    /// As in Spin, the Redis trigger addresses and `allowed_outbound_hosts` may be templates over
    /// declared application variables, whole or in part.
    const TEMPLATED: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[application.trigger.redis]
address = "{{ redis_address }}"
[variables]
redis_address = { default = "redis://127.0.0.1:6379" }
api_host = { default = "api.example.com" }
[[trigger.redis]]
channel = "a"
component = "worker"
[[trigger.redis]]
address = "redis://{{ api_host }}:6380"
channel = "b"
component = "worker"
[component.worker]
source = "worker.wasm"
allowed_outbound_hosts = ["{{ redis_address }}", "https://{{ api_host }}"]
"#;

    #[test]
    fn trigger_addresses_and_outbound_hosts_may_be_templates() {
        let app = parse(TEMPLATED).unwrap();
        let addresses: Vec<String> = app
            .redis_triggers
            .iter()
            .map(|t| t.address.to_string())
            .collect();
        assert_eq!(
            addresses,
            ["{{ redis_address }}", "redis://{{ api_host }}:6380"]
        );
        let refs: Vec<(usize, &str)> = app.components["worker"]
            .allowed_outbound_hosts
            .references()
            .collect();
        assert_eq!(refs, [(0, "redis_address"), (1, "api_host")]);
    }

    #[test]
    fn templates_may_refer_only_to_declared_variables() {
        assert_eq!(
            field_of(&TEMPLATED.replace(
                "address = \"{{ redis_address }}\"",
                "address = \"{{ nope }}\""
            )),
            "application.trigger.redis.address"
        );
        assert_eq!(
            field_of(&TEMPLATED.replace("redis://{{ api_host }}:6380", "redis://{{ nope }}:6380")),
            "trigger.redis[1].address"
        );
        assert_eq!(
            field_of(&TEMPLATED.replace("https://{{ api_host }}", "https://{{ nope }}")),
            "component.worker.allowed_outbound_hosts[1]"
        );
        assert_eq!(
            field_of(&TEMPLATED.replace(
                "\"{{ redis_address }}\", \"https",
                "\"{{ redis_address \", \"https"
            )),
            "component.worker.allowed_outbound_hosts[0]"
        );
        // A literal entry is still checked at parse time.
        assert_eq!(
            field_of(&TEMPLATED.replace(
                "\"{{ redis_address }}\", \"https",
                "\"redis://:pw@db:6379\", \"https"
            )),
            "component.worker.allowed_outbound_hosts[0]"
        );
    }

    fn field_of(text: &str) -> String {
        match parse(text) {
            Err(Error::Manifest { field, .. }) => field,
            other => panic!("expected a manifest error, got {other:?}"),
        }
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(
            field_of(&GOOD.replace("component = \"web\"", "component = \"nope\"")),
            "trigger.http[0].component"
        );
        assert_eq!(
            field_of(&GOOD.replace("/api/...", "api")),
            "trigger.http[0].route"
        );
        assert_eq!(
            field_of(&GOOD.replace("{{ token }}", "{{ nope }}")),
            "component.web.variables.auth"
        );
        assert_eq!(
            field_of(&GOOD.replace("https://api.example.com", "api.example.com")),
            "component.web.allowed_outbound_hosts[0]"
        );
        assert_eq!(
            field_of(&GOOD.replace("spin_manifest_version = 2", "spin_manifest_version = 1")),
            "spin_manifest_version"
        );
        assert_eq!(
            field_of(&GOOD.replace("1/2 * * * * *", "*/5 * * * *")),
            "trigger.cron[0].cron_expression"
        );
        assert_eq!(
            field_of(&GOOD.replace("component = \"worker\"\ncron", "component = \"nope\"\ncron")),
            "trigger.cron[0].component"
        );
        assert_eq!(
            field_of(&GOOD.replace("cron_expression = ", "schedule = ")),
            "trigger.cron[0]"
        );
    }
}
