//! Test support: starts the real `docket` binary on a fresh database
//! (SQLite in a temporary folder, or a new PostgreSQL database) and talks
//! HTTP to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test server keeps its data; survives restarts of the server.
pub struct Site {
    pub backend: Backend,
    pub database_url: String,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
    /// Extra environment for every start (e.g. a small upload limit).
    pub env: Vec<(String, String)>,
}

impl Site {
    /// A fresh site, or `None` when PostgreSQL is not configured (and not
    /// required).
    pub async fn new(backend: Backend) -> Option<Site> {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", data_dir.join("docket.db").display()),
            Backend::Postgres => fresh_postgres_database().await?,
        };
        Some(Site { backend, database_url, data_dir, _dir: dir, env: Vec::new() })
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Site {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The `docket` binary with this site's environment.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_docket"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DOCKET_DATABASE_URL", &self.database_url)
            .env("DOCKET_DATA_DIR", &self.data_dir)
            .env("DOCKET_LISTEN", "127.0.0.1:0")
            .env("DOCKET_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("DOCKET_LOG", "warn");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Runs a CLI command to completion; returns (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let output = self.command().args(args).output().expect("run docket");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Starts `docket serve` and waits until it listens.
    pub fn start(&self, extra_args: &[&str]) -> Server {
        let mut command = self.command();
        command.arg("serve").args(extra_args).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command.spawn().expect("spawn docket serve");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let mut printed = Vec::new();
        let base = loop {
            match receiver.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(address) = line.strip_prefix("Docket listening on ") {
                        break address.trim().to_string();
                    }
                    printed.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("docket serve did not start; it printed: {printed:?}");
                }
            }
        };
        Server { child: Some(child), base, printed, http: reqwest::Client::new() }
    }

    /// An admin API key made with the CLI.
    pub fn admin_key(&self) -> String {
        self.api_key_for("admin")
    }

    pub fn api_key_for(&self, username: &str) -> String {
        let (ok, stdout, stderr) = self.run(&["apikey", "create", "--user", username]);
        assert!(ok, "apikey create failed: {stderr}");
        let first = stdout.lines().next().expect("output");
        first.rsplit(' ').next().expect("key").to_string()
    }
}

/// A running server; killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    /// What the server printed before it listened.
    pub printed: Vec<String>,
    pub http: reqwest::Client,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(key)
    }

    /// Sends JSON with an API key and returns status and body.
    pub async fn call(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, path, key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("send")).await
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, key, None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, key, Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, key, Some(body)).await
    }

    /// Creates a case and returns it, asserting 201.
    pub async fn case(&self, key: &str, body: Value) -> Value {
        let (status, case) = self.post("/api/v1/cases", key, body).await;
        assert_eq!(status, StatusCode::CREATED, "{case}");
        case
    }

    /// Creates an agent with a role of the given case levels and returns
    /// (user, api key).
    pub async fn agent(
        &self,
        site: &Site,
        admin: &str,
        username: &str,
        case_levels: Value,
        team_ids: Value,
    ) -> (Value, String) {
        let permissions = json!({
            "case": case_levels,
            "account": {"create": "all", "read": "all", "edit": "all", "delete": "no"},
            "contact": {"create": "all", "read": "all", "edit": "all", "delete": "no"},
            "user": {"read": "all"},
            "team": {"read": "all"},
        });
        let (status, role) = self
            .post("/api/v1/roles", admin, json!({"name": format!("role {username}"), "permissions": permissions}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{role}");
        let (status, user) = self
            .post(
                "/api/v1/users",
                admin,
                json!({"username": username, "type": "agent", "password": "agent-password", "role_ids": [role["id"]], "team_ids": team_ids}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        (user, site.api_key_for(username))
    }

    /// Sends a signal and waits for the exit; returns whether it exited
    /// successfully.
    pub fn signal_and_wait(&mut self, signal: &str) -> bool {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().expect("kill");
        assert!(sent.success());
        child.wait().expect("wait").success()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, body)
}

/// The `name` of each item of a list page, in the page's order.
pub fn item_names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["name"].as_str().expect("name").to_string())
        .collect()
}

/// Asserts the contract's error shape and returns the error object.
pub fn error_of(status: StatusCode, body: &Value, code: &str) -> Value {
    let error = body.get("error").unwrap_or_else(|| panic!("no error object in {body}")).clone();
    assert_eq!(error["status"], status.as_u16(), "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    error
}

/// A new, empty PostgreSQL database on the test server.
async fn fresh_postgres_database() -> Option<String> {
    use sqlx::Connection;
    let Ok(admin_url) = std::env::var("DOCKET_TEST_POSTGRES_URL") else {
        if std::env::var("DOCKET_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("DOCKET_REQUIRE_POSTGRES=1 but DOCKET_TEST_POSTGRES_URL is not set");
        }
        eprintln!("skipped: DOCKET_TEST_POSTGRES_URL is not set (scripts/test sets it)");
        return None;
    };
    let name = format!("docket_t_{}", docket_domain::ids::new_id());
    let mut conn = sqlx::PgConnection::connect(&admin_url).await.expect("connect to test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
    let base = admin_url.rsplit_once('/').map(|(base, _)| base).expect("URL with a database");
    Some(format!("{base}/{name}"))
}

/// Files under a folder, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Runs a test body against both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let site = $crate::support::Site::new($crate::support::Backend::Sqlite).await.expect("sqlite site");
                    super::$name(site).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(site) = $crate::support::Site::new($crate::support::Backend::Postgres).await {
                        super::$name(site).await;
                    }
                }
            )*
        }
    };
}

/// A real SMTP server (aiosmtpd, from PyPI) that stores what it receives
/// in a Maildir; killed when dropped.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the server, or `None` when aiosmtpd is not installed (and
    /// not required: scripts/test sets DOCKET_REQUIRE_SMTP=1).
    pub fn start() -> Option<SmtpSink> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        Self::start_on(port)
    }

    /// Starts on a given port (to bring a "crashed" mail server back).
    pub fn start_on(port: u16) -> Option<SmtpSink> {
        let available = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            if std::env::var("DOCKET_REQUIRE_SMTP").as_deref() == Ok("1") {
                panic!("DOCKET_REQUIRE_SMTP=1 but the aiosmtpd Python package is not installed");
            }
            eprintln!("skipped: aiosmtpd is not installed (scripts/test installs it)");
            return None;
        }
        let maildir = tempfile::tempdir().expect("maildir");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("box"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        // Owned by the sink from here on: dropping it kills and reaps the process.
        let sink = SmtpSink { child, port, maildir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(sink);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("aiosmtpd did not start");
    }

    /// Every message received so far, as raw text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for folder in ["new", "cur"] {
            for path in files_under(&self.maildir.path().join("box").join(folder)) {
                out.push(std::fs::read_to_string(path).expect("message"));
            }
        }
        out
    }

    /// Waits until at least `count` messages arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<String> {
        for _ in 0..200 {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {count} messages, got {:?}", self.messages());
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real IMAP server (Dovecot, from Debian's `dovecot-imapd`) on a
/// loopback port, with throwaway users whose mail lives in a temporary
/// folder; mail is delivered with `doveadm save`, as a mail server's
/// delivery agent would. Stopped when dropped.
pub struct Dovecot {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Dovecot {
    /// Starts the server, or `None` when Dovecot is not installed (and
    /// not required: scripts/test sets DOCKET_REQUIRE_IMAP=1).
    pub fn start() -> Option<Dovecot> {
        let installed = Path::new("/usr/sbin/dovecot").exists() && Path::new("/usr/bin/doveadm").exists();
        if !installed {
            if std::env::var("DOCKET_REQUIRE_IMAP").as_deref() == Ok("1") {
                panic!("DOCKET_REQUIRE_IMAP=1 but Dovecot is not installed (apt-get install dovecot-imapd)");
            }
            eprintln!("skipped: Dovecot is not installed (scripts/test installs it)");
            return None;
        }
        let dir = tempfile::tempdir().expect("dovecot dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut dovecot = Dovecot { child: None, port, dir };
        dovecot.configure();
        dovecot.run();
        Some(dovecot)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn configure(&self) {
        let root = self.dir.path();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(root.join(sub)).expect("dovecot folders");
        }
        // Mail is read and written as the `mail` user, never as root.
        let chown = |path: &Path| {
            Command::new("chown").arg("-R").arg("mail:mail").arg(path).status().expect("chown");
        };
        chown(&root.join("home"));
        Command::new("chmod").arg("755").arg(root).status().expect("chmod");
        std::fs::write(root.join("passwd"), "").expect("passwd");
        let config = format!(
            "base_dir = {root}/run\nstate_dir = {root}/state\nlog_path = {root}/dovecot.log\nprotocols = imap\n\
             listen = 127.0.0.1\nssl = no\ndisable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             default_internal_user = dovecot\ndefault_login_user = dovenull\nfirst_valid_uid = 1\n\
             mail_location = maildir:~/Maildir\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {root}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=mail gid=mail home={root}/home/%u\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n\
               inet_listener imaps {{\n    port = 0\n  }}\n}}\nservice anvil {{\n  chroot =\n}}\n",
            root = root.display(),
            port = self.port
        );
        std::fs::write(root.join("dovecot.conf"), config).expect("dovecot.conf");
    }

    fn run(&mut self) {
        let child = Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(self.path("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dovecot");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("dovecot did not start: {}", std::fs::read_to_string(self.path("dovecot.log")).unwrap_or_default());
    }

    /// Stops the server (its mail stays), as a crash or restart would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("/usr/sbin/dovecot")
                .arg("-c")
                .arg(self.path("dovecot.conf"))
                .arg("stop")
                .stderr(Stdio::null())
                .status();
            for _ in 0..100 {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same mail.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// A user (a mailbox's login) with this password.
    pub fn add_user(&self, user: &str, password: &str) {
        let mut passwd = std::fs::read_to_string(self.path("passwd")).expect("passwd");
        passwd.push_str(&format!("{user}:{{PLAIN}}{password}\n"));
        std::fs::write(self.path("passwd"), passwd).expect("passwd");
    }

    /// Delivers a raw message into the user's INBOX.
    pub fn deliver(&self, user: &str, raw: &[u8]) {
        use std::io::Write;
        let mut child = Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(self.path("dovecot.conf"))
            .args(["save", "-u", user, "-m", "INBOX"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("doveadm save");
        child.stdin.take().expect("stdin").write_all(raw).expect("write message");
        let output = child.wait_with_output().expect("doveadm");
        assert!(output.status.success(), "doveadm save failed: {}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}
