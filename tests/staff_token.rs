//! The staff bootstrap token (`admin_token`) through a real `oms up` on the OMS manifest, with
//! only the admin component loaded: generated once on loopback and kept private in the state
//! folder, reused on restart, shown only in its start message, refused on a non-loopback
//! address unless given.
//!
//! The tests expect `SPIN_VARIABLE_ADMIN_TOKEN` unset in their environment (as `./oms test`
//! runs them).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

/// The token `./oms up` used to export when none was set; published in the README.
const OLD_FIXED_TOKEN: &str = "dev-admin-token";

fn manifest() -> PathBuf {
    require_wasm(&["admin"]);
    app_root().join("spin.toml")
}

/// `oms up -c admin` on loopback in `state`, its own log at debug level (to show that the token
/// stays out of it).
fn start(state: tempfile::TempDir) -> Host {
    Host::start_in(
        &manifest(),
        &["-c", "admin"],
        &[("OMS_LOG", "debug,wasmtime=warn,cranelift=warn")],
        state,
    )
}

/// The bearer header for `token`.
fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Status of a cheap staff call: one reconciler pass over an empty owed-work index.
fn reconcile(base: &str, authorization: Option<&str>) -> u16 {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    send(
        "POST",
        &format!("{base}/v1/admin/reconcile?limit=10"),
        Some(b""),
        &headers,
    )
    .status
}

/// Status of a staff GET.
fn admin_get(base: &str, authorization: &str) -> u16 {
    send(
        "GET",
        &format!("{base}/v1/admin/keys"),
        None,
        &[("authorization", authorization)],
    )
    .status
}

fn kept_token(state: &Path) -> String {
    let text = std::fs::read_to_string(state.join("staff-token")).unwrap();
    text.trim().to_string()
}

#[test]
fn a_private_token_generated_on_first_start_authorizes_staff_and_a_restart_reuses_it() {
    let host = start(tempfile::tempdir().unwrap());
    let file = host.state.path().join("staff-token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    let token = kept_token(host.state.path());
    assert!(
        token.len() >= 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );

    // Shown once, where it is kept and how to send it.
    host.wait_log("Authorization: Bearer");
    let log = host.log();
    assert!(
        log.contains(&format!("Authorization: Bearer {token}")),
        "{log}"
    );
    assert!(log.contains(&file.display().to_string()), "{log}");
    assert!(log.contains("generated now"), "{log}");

    assert_eq!(reconcile(&host.base, Some(&bearer(&token))), 200);
    assert_ne!(admin_get(&host.base, &bearer(&token)), 401);
    assert_eq!(reconcile(&host.base, Some(&bearer(OLD_FIXED_TOKEN))), 401);
    assert_eq!(admin_get(&host.base, &bearer(OLD_FIXED_TOKEN)), 401);
    assert_eq!(reconcile(&host.base, None), 401);
    // Nowhere else in the log (debug level, a request log per call) than its start message.
    assert_eq!(host.log().matches(&token).count(), 1, "{}", host.log());

    let host = start(host.kill());
    assert_eq!(kept_token(host.state.path()), token);
    host.wait_log("Authorization: Bearer");
    assert!(host.log().contains("generated on an earlier start"));
    assert_eq!(reconcile(&host.base, Some(&bearer(&token))), 200);
}

#[test]
fn a_non_loopback_address_without_a_token_stops_start_naming_the_variable() {
    let state = tempfile::tempdir().unwrap();
    let manifest = manifest();
    let (ok, _, stderr) = run_oms(
        &[
            "up",
            "--from",
            manifest.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
            "--state-dir",
            state.path().to_str().unwrap(),
            "-c",
            "admin",
        ],
        &[],
    );
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("\"admin_token\"")
            && stderr.contains("SPIN_VARIABLE_ADMIN_TOKEN")
            && stderr.contains("0.0.0.0:0")
            && stderr.contains("not a loopback address"),
        "{stderr}"
    );
    assert!(!state.path().join("staff-token").exists());
}

/// An `oms up` this test started, killed on drop.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_non_loopback_address_with_a_given_token_starts_without_generating_one() {
    let state = tempfile::tempdir().unwrap();
    let token = "a-token-chosen-by-the-operator";
    let mut child = Command::new(oms_bin())
        .args(["up", "--from"])
        .arg(manifest())
        .args(["--listen", "0.0.0.0:0", "--state-dir"])
        .arg(state.path())
        .args(["-c", "admin"])
        .env("SPIN_VARIABLE_ADMIN_TOKEN", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn oms");
    let stdout = child.stdout.take().unwrap();
    let mut started = Started(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("Serving http://") {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| {
            let _ = started.0.try_wait();
            panic!("oms up --listen 0.0.0.0:0 with a token did not start")
        });
    let port = addr.rsplit(':').next().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(reconcile(&base, Some(&bearer(token))), 200);
    assert_eq!(reconcile(&base, Some(&bearer(OLD_FIXED_TOKEN))), 401);
    assert!(!state.path().join("staff-token").exists());
}
