//! Test support: start a real `oms up` on a free loopback port and talk to it over HTTP.

#![allow(dead_code)]

pub mod oms;
pub mod redis;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where the app under test lives: its `spin.toml` and the built components
/// (`target/wasm32-wasip1/release`). The repository, unless `OMS_TEST_APP` names another
/// checkout (e.g. a `git worktree` of a commit, to test its components with this host).
pub fn app_root() -> PathBuf {
    std::env::var_os("OMS_TEST_APP")
        .map(PathBuf::from)
        .unwrap_or_else(repo)
}

/// The host binary cargo built for this test run.
pub fn oms_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_oms"))
}

/// Fails the test early with a clear message when the guest components are not built.
pub fn require_wasm(names: &[&str]) {
    for n in names {
        let p = app_root().join(format!("target/wasm32-wasip1/release/{n}.wasm"));
        assert!(
            p.exists(),
            "{} is missing: build the components first (scripts/build-wasm.sh, or ./oms test)",
            p.display()
        );
    }
}

/// A running `oms up`, killed on drop.
pub struct Host {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The state folder (kv, queue, cache), deleted on drop.
    pub state: tempfile::TempDir,
    log: Arc<Mutex<String>>,
}

impl Host {
    /// Starts `oms up --from manifest` with extra args and environment; waits until it serves.
    pub fn start(manifest: &Path, args: &[&str], env: &[(&str, &str)]) -> Host {
        let state = tempfile::tempdir().unwrap();
        Self::start_in(manifest, args, env, state)
    }

    /// As [`Host::start`], reusing a state folder (e.g. to test a restart).
    pub fn start_in(
        manifest: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        state: tempfile::TempDir,
    ) -> Host {
        let mut cmd = Command::new(oms_bin());
        cmd.arg("up")
            .arg("--from")
            .arg(manifest)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--state-dir")
            .arg(state.path())
            .args(args)
            .env("OMS_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn oms");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Serving ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.trim().to_string());
                    }
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                std::thread::sleep(Duration::from_millis(100));
                panic!("oms up did not start; log:\n{}", log.lock().unwrap());
            }
        };
        Host {
            child,
            base,
            state,
            log,
        }
    }

    /// A URL on the host.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Everything the host logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stops the host (like a crash: SIGKILL) and hands back its state folder.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.state, dir)
    }

    /// Waits until the log contains `needle` (the log is read by another thread).
    pub fn wait_log(&self, needle: &str) {
        eventually(Duration::from_secs(10), needle, || {
            self.log().contains(needle).then_some(())
        });
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response: status, content type and body text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// Sends a request; any status is a reply (transport errors panic).
pub fn send(method: &str, url: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> Reply {
    try_send(method, url, body, headers).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends a request; any status is a reply, a transport error (nothing listening, the
/// connection dropped, a body cut short) is `Err` with its description.
pub fn try_send(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("{method} {url}: {e}")),
    };
    let (status, content_type) = (resp.status(), resp.content_type().to_string());
    // A body cut short (the host stopped the guest after it sent the head) is no answer.
    let body = resp
        .into_string()
        .map_err(|e| format!("{method} {url}: {status} with a broken body: {e}"))?;
    Ok(Reply {
        status,
        content_type,
        body,
    })
}

pub fn get(url: &str) -> Reply {
    send("GET", url, None, &[])
}

pub fn post(url: &str, body: &str) -> Reply {
    send("POST", url, Some(body.as_bytes()), &[])
}

pub fn put(url: &str, body: &str) -> Reply {
    send("PUT", url, Some(body.as_bytes()), &[])
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `oms` with arguments to completion: (exit success, stdout, stderr).
pub fn run_oms(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(oms_bin());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run oms");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls an async `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually_async<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
