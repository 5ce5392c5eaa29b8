//! A small W3C WebDriver client over reqwest: just what the browser tests
//! use (navigate, find, type, click, read, screenshot), driving Debian's
//! headless Chromium through chromedriver.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

/// The W3C web element identifier key.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process; killed when dropped.
pub struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Driver {
    /// Starts chromedriver, or `None` when Chromium is not installed (and
    /// not required: CI sets DOCKET_REQUIRE_BROWSER=1).
    pub async fn start() -> Option<Driver> {
        let found = ["/usr/bin/chromium", "/usr/bin/chromedriver"].iter().all(|p| std::path::Path::new(p).exists());
        if !found {
            if std::env::var("DOCKET_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!("DOCKET_REQUIRE_BROWSER=1 but chromium/chromedriver are not installed");
            }
            eprintln!("skipped: chromium and chromedriver are not installed (scripts/test installs them)");
            return None;
        }
        let port = free_port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver { child, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() };
        for _ in 0..100 {
            if let Ok(response) = driver.http.get(format!("{}/status", driver.base)).send().await
                && response.status().is_success()
            {
                return Some(driver);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready");
    }

    /// A new headless browser window.
    pub async fn session(&self) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let response: Value = self
            .http
            .post(format!("{}/session", self.base))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let id =
            response["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {response}")).to_string();
        Browser { http: self.http.clone(), url: format!("{}/session/{id}", self.base), _profile: profile }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// One browser session.
pub struct Browser {
    http: reqwest::Client,
    url: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.expect("webdriver request").json().await.expect("webdriver json");
        if let Some(error) = response["value"].get("error") {
            panic!("webdriver {path}: {error}: {}", response["value"]["message"]);
        }
        response["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn current_url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn source(&self) -> String {
        self.command(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_string()
    }

    /// The first element matching a CSS selector; panics with the page
    /// source when there is none.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let response: Value = self
            .http
            .post(format!("{}/element", self.url))
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .expect("find")
            .json()
            .await
            .expect("json");
        match response["value"][ELEMENT_KEY].as_str() {
            Some(id) => Element { browser: self, id: id.to_string() },
            None => panic!("no element `{css}` on {}:\n{}", self.current_url().await, self.source().await),
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        let found = self
            .command(reqwest::Method::POST, "/elements", Some(json!({"using": "css selector", "value": css})))
            .await;
        found.as_array().is_some_and(|list| !list.is_empty())
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await
    }

    /// Runs JavaScript in the page (tests only: to forge requests).
    pub async fn script(&self, code: &str) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", Some(json!({"script": code, "args": []}))).await
    }

    /// Saves a PNG screenshot.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let encoded = self.command(reqwest::Method::GET, "/screenshot", None).await;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(encoded.as_str().unwrap_or_default()).expect("png");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("screenshot dir");
        }
        std::fs::write(path, bytes).expect("write screenshot");
    }

    /// Accepts a `confirm()` dialog.
    pub async fn accept_alert(&self) {
        self.command(reqwest::Method::POST, "/alert/accept", Some(json!({}))).await;
    }

    pub async fn close(self) {
        let _ = self.http.delete(&self.url).send().await;
    }
}

pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    pub async fn click(&self) {
        self.browser.command(reqwest::Method::POST, &format!("/element/{}/click", self.id), Some(json!({}))).await;
    }

    pub async fn clear(&self) {
        self.browser.command(reqwest::Method::POST, &format!("/element/{}/clear", self.id), Some(json!({}))).await;
    }

    pub async fn type_text(&self, text: &str) {
        self.browser
            .command(reqwest::Method::POST, &format!("/element/{}/value", self.id), Some(json!({"text": text})))
            .await;
    }

    pub async fn text(&self) -> String {
        self.browser
            .command(reqwest::Method::GET, &format!("/element/{}/text", self.id), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn attribute(&self, name: &str) -> Option<String> {
        self.browser
            .command(reqwest::Method::GET, &format!("/element/{}/attribute/{name}", self.id), None)
            .await
            .as_str()
            .map(str::to_string)
    }
}
