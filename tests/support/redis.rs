//! A real `redis-server` for a test: started on a free loopback port with no persistence,
//! stopped (SIGKILL) on drop. Never a server that was already running. `scripts/install-redis.sh`
//! (run by `./oms test`) installs the binary; a missing binary fails the test with that hint.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        for _ in 0..5 {
            if let Some(server) = Self::try_start(free_port()) {
                return server;
            }
        }
        panic!("redis-server did not start on a free port (5 tries)");
    }

    /// Starts a server on `port` (e.g. again after [`RedisServer::stop`]), or `None` if it
    /// did not come up.
    pub fn try_start(port: u16) -> Option<RedisServer> {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "yes", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): run scripts/install-redis.sh (./oms test does)"
                )
            });
        let mut server = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if server.child.try_wait().unwrap().is_some() {
                return None;
            }
            if server
                .command("PING")
                .is_some_and(|r| r.starts_with("+PONG"))
            {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A runtime config file whose `default` key-value store and owed-work index (`owed`)
    /// are this server (kept as long as the server).
    pub fn runtime_config(&self) -> std::path::PathBuf {
        let file = self._dir.path().join("runtime-config.redis.toml");
        std::fs::write(
            &file,
            format!(
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n\
                 [key_value_store.owed]\ntype = \"redis\"\nurl = \"{url}\"\n",
                url = self.url()
            ),
        )
        .unwrap();
        file
    }

    /// Sends one inline command; the first reply line (e.g. `+PONG`, `:3`), or `None` when the
    /// server does not answer.
    pub fn command(&self, line: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply).ok()?;
        Some(reply.trim_end().to_string())
    }

    /// The keys matching `pattern` (`KEYS`: for tests on a small data set only).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("KEYS {pattern}\r\n").as_bytes())
            .unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        let mut next_line = |line: &mut String| {
            line.clear();
            reader.read_line(line).unwrap();
            line.trim_end().to_string()
        };
        let head = next_line(&mut line);
        let n: usize = head
            .strip_prefix('*')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("KEYS {pattern}: {head}"));
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            // `$len` then the key on its own line (keys here hold no line breaks).
            let _len = next_line(&mut line);
            keys.push(next_line(&mut line));
        }
        keys
    }

    /// Kills the server (an outage); its data is gone, as with no persistence in production
    /// after a crash. Start a new one on the same port with [`RedisServer::try_start`].
    pub fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
