//! The OMS's staff bootstrap token: the application variable `admin_token`, which the staff
//! routes (`/v1/admin/...`, refunds, returns, holds, webhooks, API keys) accept as
//! `Authorization: Bearer <token>`.
//!
//! Nobody has to invent one to try the OMS: when the app declares `admin_token` and no value is
//! given (no `SPIN_VARIABLE_ADMIN_TOKEN`, no default), `oms up` on a loopback address generates
//! a random token once (32 bytes from the OS, hex), keeps it in the state folder
//! (`staff-token`, mode 0600) and reuses it on later starts. On any other address it refuses to
//! start: an OMS others can reach never runs with a token nobody chose. Only this variable is
//! treated so; any other required variable without a value still stops start with its name.
//!
//! The token appears in no log record; [`StaffToken::announce`] is the one place it is shown.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::manifest::App;
use crate::variables::env_name;
use crate::Error;

/// The application variable holding the staff bootstrap token.
pub const VARIABLE: &str = "admin_token";

/// The file in the state folder that keeps a generated token.
pub const FILE: &str = "staff-token";

/// Random bytes in a generated token.
const TOKEN_BYTES: usize = 32;

/// A staff token `oms up` supplies itself: generated now or on an earlier start, kept in the
/// state folder.
pub struct StaffToken {
    value: String,
    path: PathBuf,
    created: bool,
}

impl fmt::Debug for StaffToken {
    /// The file and whether it was created; never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaffToken")
            .field("path", &self.path)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl StaffToken {
    /// The token `oms up` must supply for `app` served on `listen`, if any: `None` when the app
    /// declares no `admin_token` or a value is given (`env` has a non-blank
    /// `SPIN_VARIABLE_ADMIN_TOKEN`, or the manifest a default). Otherwise, on a loopback address,
    /// the token kept in `state`, generated and stored there the first time.
    ///
    /// # Errors
    /// [`Error::Variable`] naming the variable and `SPIN_VARIABLE_ADMIN_TOKEN` when `listen` is
    /// not a loopback address; when the token file cannot be created or read, or is empty.
    pub fn bootstrap(
        app: &App,
        listen: SocketAddr,
        state: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<StaffToken>, Error> {
        let Some(decl) = app.variables.get(VARIABLE) else {
            return Ok(None);
        };
        let given = env(&env_name(VARIABLE)).is_some_and(|v| !v.trim().is_empty());
        if given || decl.default.is_some() {
            return Ok(None);
        }
        if !listen.ip().to_canonical().is_loopback() {
            return Err(Error::Variable(format!(
                "variable {VARIABLE:?} (the staff token) has no value, and {listen} is not a \
                 loopback address: set {} to a secret of your own (a token is generated only \
                 for 127.0.0.1 or [::1])",
                env_name(VARIABLE)
            )));
        }
        let path = state.join(FILE);
        let (value, created) = keep_once(&path)?;
        Ok(Some(StaffToken {
            value,
            path,
            created,
        }))
    }

    /// The token.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Where it is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The message that shows the token to whoever started `oms up` serving at `addr`: where it
    /// is kept and how to send it.
    pub fn announce(&self, addr: SocketAddr) -> String {
        let when = if self.created {
            "generated now"
        } else {
            "generated on an earlier start"
        };
        let path = self.path.display();
        format!(
            "staff token (variable {VARIABLE}, {when}; kept in {path}):\n  \
             Authorization: Bearer {value}\n  \
             e.g. curl -H \"Authorization: Bearer $(cat {path})\" http://{addr}/v1/admin/...\n  \
             set {env} to use a token of your own instead",
            value = self.value,
            env = env_name(VARIABLE),
        )
    }
}

/// The token in `path`, or a new one stored there: `(token, created)`. Two hosts starting on
/// one state folder at once agree on one token: the file appears complete or not at all.
fn keep_once(path: &Path) -> Result<(String, bool), Error> {
    let fail = |what: &str, e: std::io::Error| {
        Error::Variable(format!(
            "variable {VARIABLE:?}: cannot {what} the staff token file {}: {e}",
            path.display()
        ))
    };
    match read(path) {
        Ok(token) => return Ok((token, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail("read", e)),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail("create the folder of", e))?;
    let token = generate().map_err(|e| fail("generate", e))?;
    // Written whole under a private name, then linked into place, which fails if another host
    // got there first: no reader ever sees a half-written file.
    let temp = dir.join(format!(".{FILE}.{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let linked = write_private(&temp, &token).and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok((token, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(path).map(|t| (t, false)).map_err(|e| fail("read", e))
        }
        Err(e) => Err(fail("write", e)),
    }
}

/// A kept token (the file's first line, trimmed), warning when others may read the file.
fn read(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it holds no token (delete it to generate a new one)",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the staff token file is readable by other users: chmod 600 it"
            );
        }
    }
    Ok(token.to_string())
}

/// A new token: [`TOKEN_BYTES`] from the OS's random source, hex.
fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Creates `path` (which must not exist) readable by its owner only, holding `token`.
fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
admin_token = { required = true, secret = true }
[component.c]
source = "c.wasm"
[component.c.variables]
admin_token = "{{ admin_token }}"
"#;

    fn app(text: &str) -> App {
        App::parse(Path::new("spin.toml"), text).unwrap()
    }

    const LOOPBACK: &str = "127.0.0.1:3000";

    fn bootstrap(
        text: &str,
        listen: &str,
        state: &Path,
        env: &[(&str, &str)],
    ) -> Result<Option<StaffToken>, Error> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        StaffToken::bootstrap(&app(text), listen.parse().unwrap(), state, |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn generated_once_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".oms");
        let first = bootstrap(APP, LOOPBACK, &state, &[]).unwrap().unwrap();
        assert!(first.created);
        assert_eq!(first.value().len(), 2 * TOKEN_BYTES);
        assert!(first.value().chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(first.path(), state.join(FILE));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(first.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = bootstrap(APP, "[::1]:0", &state, &[]).unwrap().unwrap();
        assert!(!again.created);
        assert_eq!(again.value(), first.value());
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(&state).unwrap().count(), 1);

        let other = tempfile::tempdir().unwrap();
        let fresh = bootstrap(APP, LOOPBACK, other.path(), &[])
            .unwrap()
            .unwrap();
        assert_ne!(fresh.value(), first.value());
    }

    #[test]
    fn a_given_value_or_default_or_another_app_needs_none() {
        let dir = tempfile::tempdir().unwrap();
        let env = [("SPIN_VARIABLE_ADMIN_TOKEN", "chosen")];
        for listen in [LOOPBACK, "0.0.0.0:3000"] {
            assert!(bootstrap(APP, listen, dir.path(), &env).unwrap().is_none());
        }
        let with_default = APP.replace("required = true,", "default = \"d\",");
        assert!(bootstrap(&with_default, "0.0.0.0:3000", dir.path(), &[])
            .unwrap()
            .is_none());
        let other = APP.replace("admin_token", "api_token");
        assert!(bootstrap(&other, "0.0.0.0:3000", dir.path(), &[])
            .unwrap()
            .is_none());
        assert!(!dir.path().join(FILE).exists());
        // A blank value is no token.
        let blank = [("SPIN_VARIABLE_ADMIN_TOKEN", " ")];
        assert!(bootstrap(APP, LOOPBACK, dir.path(), &blank)
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_non_loopback_address_without_a_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for listen in ["0.0.0.0:3000", "[::]:3000", "192.168.1.20:3000"] {
            let err = bootstrap(APP, listen, dir.path(), &[]).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains("\"admin_token\"")
                    && message.contains("SPIN_VARIABLE_ADMIN_TOKEN")
                    && message.contains(listen),
                "{message}"
            );
        }
        assert!(!dir.path().join(FILE).exists());
    }

    #[test]
    fn an_empty_token_file_is_an_error_not_an_empty_token() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "\n").unwrap();
        let err = bootstrap(APP, LOOPBACK, dir.path(), &[]).unwrap_err();
        assert!(err.to_string().contains("delete it"), "{err}");
    }

    #[test]
    fn the_token_shows_in_the_announcement_only() {
        let dir = tempfile::tempdir().unwrap();
        let token = bootstrap(APP, LOOPBACK, dir.path(), &[]).unwrap().unwrap();
        assert!(!format!("{token:?}").contains(token.value()));
        let shown = token.announce("127.0.0.1:3000".parse().unwrap());
        assert!(
            shown.contains(&format!("Authorization: Bearer {}", token.value()))
                && shown.contains(&token.path().display().to_string()),
            "{shown}"
        );
    }
}
