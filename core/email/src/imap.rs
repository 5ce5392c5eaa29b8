//! Fetching from an IMAP folder (async-imap): connect (plain, TLS or
//! STARTTLS), log in, select the folder, list the UIDs after the last one
//! ingested, fetch sizes and then bodies in batches, and wait for new mail
//! with IDLE where the server offers it. Every step has a timeout, and
//! every error says which step failed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::{Client, Session};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// How to reach a group mailbox's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub security: String,
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// The folder to fetch, `INBOX` by default.
    #[serde(default = "inbox")]
    pub folder: String,
}

fn inbox() -> String {
    "INBOX".into()
}

impl ImapSettings {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.host.trim().is_empty() || self.host.contains(char::is_whitespace) {
            return Err(("host".into(), "required, no spaces".into()));
        }
        if self.port == 0 {
            return Err(("port".into(), "must be 1 to 65535".into()));
        }
        if !matches!(self.security.as_str(), "none" | "starttls" | "tls") {
            return Err(("security".into(), "one of none, starttls, tls".into()));
        }
        if self.username.trim().is_empty() || self.username.contains(['\r', '\n']) {
            return Err(("username".into(), "required, one line".into()));
        }
        if self.password.contains(['\r', '\n']) {
            return Err(("password".into(), "one line".into()));
        }
        if self.folder.trim().is_empty() || self.folder.contains(['\r', '\n']) {
            return Err(("folder".into(), "required, one line (usually INBOX)".into()));
        }
        Ok(())
    }
}

/// What went wrong, by step, for the admin's "last error" and the test
/// connection button.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImapError {
    #[error("could not connect to {0}")]
    Connect(String),
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("the server refused the login: {0}")]
    Login(String),
    #[error("could not open the folder: {0}")]
    Folder(String),
    #[error("the server answered unexpectedly: {0}")]
    Protocol(String),
    #[error("the server did not answer in time ({0})")]
    Timeout(&'static str),
}

/// The selected folder: UIDs are only meaningful together with
/// UIDVALIDITY (a new value means the folder was recreated and every UID
/// may name another message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderState {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub exists: u32,
}

/// A fetched message.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub uid: u32,
    pub raw: Vec<u8>,
}

/// Anything a session can run over: TCP, or TLS over TCP.
pub trait ImapIo: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> ImapIo for T {}
type Io = Box<dyn ImapIo>;

/// How long one network step may take.
const STEP: Duration = Duration::from_secs(30);

async fn step<T>(
    what: &'static str,
    future: impl Future<Output = Result<T, async_imap::error::Error>>,
    error: impl FnOnce(String) -> ImapError,
) -> Result<T, ImapError> {
    match tokio::time::timeout(STEP, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(error(e.to_string())),
        Err(_) => Err(ImapError::Timeout(what)),
    }
}

/// A logged-in session with the folder selected.
pub struct Connection {
    session: Session<Io>,
    idle: bool,
}

impl Connection {
    /// Connects, logs in and selects the folder.
    pub async fn open(settings: &ImapSettings) -> Result<(Connection, FolderState), ImapError> {
        let address = format!("{}:{}", settings.host, settings.port);
        let tcp = match tokio::time::timeout(STEP, TcpStream::connect((settings.host.as_str(), settings.port))).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(ImapError::Connect(format!("{address}: {e}"))),
            Err(_) => return Err(ImapError::Timeout("connecting")),
        };
        let client = match settings.security.as_str() {
            "tls" => {
                let mut client = Client::new(upgrade(tcp, &settings.host).await?);
                greeting(&mut client).await?;
                client
            }
            "starttls" => {
                let mut client = Client::new(tcp);
                greeting(&mut client).await?;
                step("STARTTLS", client.run_command_and_check_ok("STARTTLS", None), ImapError::Tls).await?;
                // No greeting follows STARTTLS.
                Client::new(upgrade(client.into_inner(), &settings.host).await?)
            }
            _ => {
                let mut client = Client::new(Box::new(tcp) as Io);
                greeting(&mut client).await?;
                client
            }
        };
        let mut session = match tokio::time::timeout(STEP, client.login(&settings.username, &settings.password)).await {
            Ok(Ok(session)) => session,
            Ok(Err((e, _))) => return Err(ImapError::Login(e.to_string())),
            Err(_) => return Err(ImapError::Timeout("logging in")),
        };
        let capabilities = step("CAPABILITY", session.capabilities(), ImapError::Protocol).await?;
        let idle = capabilities.has_str("IDLE");
        let mailbox = step("SELECT", session.select(&settings.folder), |e| {
            ImapError::Folder(format!("{}: {e}", settings.folder))
        })
        .await?;
        let state = FolderState {
            uid_validity: mailbox.uid_validity.unwrap_or(0),
            uid_next: mailbox.uid_next.unwrap_or(0),
            exists: mailbox.exists,
        };
        Ok((Connection { session, idle }, state))
    }

    /// Whether the server offers IDLE.
    pub fn offers_idle(&self) -> bool {
        self.idle
    }

    /// The UIDs above `last_uid`, ascending; with `since`, only those the
    /// server received on or after that day.
    pub async fn uids_after(&mut self, last_uid: u32, since: Option<chrono::NaiveDate>) -> Result<Vec<u32>, ImapError> {
        let mut query = format!("UID {}:*", last_uid.saturating_add(1));
        if let Some(day) = since {
            // IMAP dates are like 28-Nov-2026, in English whatever the locale.
            query.push_str(&format!(" SINCE {}", day.format("%-d-%b-%Y")));
        }
        let found = step("UID SEARCH", self.session.uid_search(query), ImapError::Protocol).await?;
        // `n:*` always matches the highest UID, even when it is below n.
        let mut uids: Vec<u32> = found.into_iter().filter(|uid| *uid > last_uid).collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The sizes of some messages, to skip downloading oversized ones.
    pub async fn sizes(&mut self, uids: &[u32]) -> Result<BTreeMap<u32, u32>, ImapError> {
        let mut sizes = BTreeMap::new();
        if uids.is_empty() {
            return Ok(sizes);
        }
        let set = uid_set(uids);
        let mut stream =
            step("UID FETCH size", self.session.uid_fetch(set, "(UID RFC822.SIZE)"), ImapError::Protocol).await?;
        loop {
            match tokio::time::timeout(STEP, stream.try_next()).await {
                Ok(Ok(Some(fetch))) => {
                    if let (Some(uid), Some(size)) = (fetch.uid, fetch.size) {
                        sizes.insert(uid, size);
                    }
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Err(ImapError::Protocol(e.to_string())),
                Err(_) => return Err(ImapError::Timeout("reading sizes")),
            }
        }
        Ok(sizes)
    }

    /// The raw messages, without setting `\Seen` (other clients of the
    /// mailbox still see them as new), and the UIDs the server did not
    /// send because they no longer exist (deleted meanwhile). A UID that
    /// still exists but did not come is an error: the answer was cut short.
    pub async fn fetch(&mut self, uids: &[u32]) -> Result<(Vec<Fetched>, Vec<u32>), ImapError> {
        let mut fetched = Vec::new();
        if uids.is_empty() {
            return Ok((fetched, Vec::new()));
        }
        let set = uid_set(uids);
        let mut stream =
            step("UID FETCH", self.session.uid_fetch(set, "(UID BODY.PEEK[])"), ImapError::Protocol).await?;
        loop {
            match tokio::time::timeout(STEP, stream.try_next()).await {
                Ok(Ok(Some(fetch))) => {
                    if let (Some(uid), Some(body)) = (fetch.uid, fetch.body())
                        && uids.contains(&uid)
                    {
                        fetched.push(Fetched { uid, raw: body.to_vec() });
                    }
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Err(ImapError::Protocol(e.to_string())),
                Err(_) => return Err(ImapError::Timeout("fetching messages")),
            }
        }
        drop(stream);
        fetched.sort_by_key(|f| f.uid);
        // A stream that ends early (a tagged NO, a dropped connection)
        // looks like the end of the answer: ask whether the missing ones
        // still exist.
        let missing: Vec<u32> = uids.iter().copied().filter(|uid| !fetched.iter().any(|f| f.uid == *uid)).collect();
        if missing.is_empty() {
            return Ok((fetched, missing));
        }
        let query = format!("UID {}", uid_set(&missing));
        let still = step("UID SEARCH", self.session.uid_search(query), ImapError::Protocol).await?;
        if let Some(uid) = missing.iter().find(|uid| still.contains(uid)) {
            return Err(ImapError::Protocol(format!("the server did not send message UID {uid}")));
        }
        Ok((fetched, missing))
    }

    /// Waits up to `timeout` for the server to report a change (IDLE), or
    /// just sleeps when the server has no IDLE. Returns the connection for
    /// the next fetch.
    pub async fn wait(self, timeout: Duration) -> Result<Connection, ImapError> {
        if !self.idle {
            tokio::time::sleep(timeout).await;
            return Ok(self);
        }
        let mut handle = self.session.idle();
        step("IDLE", handle.init(), ImapError::Protocol).await?;
        let (wait, stop) = handle.wait_with_timeout(timeout);
        // The wait restarts on every keep-alive line: cap it from outside.
        let outcome = tokio::time::timeout(timeout + Duration::from_secs(5), wait).await;
        drop(stop);
        match outcome {
            Ok(Ok(IdleResponse::NewData(_) | IdleResponse::Timeout | IdleResponse::ManualInterrupt)) | Err(_) => {}
            Ok(Err(e)) => return Err(ImapError::Protocol(e.to_string())),
        }
        // A server that went away shows up here, when DONE gets no answer.
        let session = step("IDLE DONE", handle.done(), ImapError::Protocol).await?;
        Ok(Connection { session, idle: true })
    }

    /// Says goodbye; errors are of no interest any more.
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }
}

async fn greeting<T: ImapIo>(client: &mut Client<T>) -> Result<(), ImapError> {
    match tokio::time::timeout(STEP, client.read_response()).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err(ImapError::Protocol("the server closed the connection before greeting".into())),
        Ok(Err(e)) => Err(ImapError::Protocol(e.to_string())),
        Err(_) => Err(ImapError::Timeout("waiting for the greeting")),
    }
}

async fn upgrade(tcp: TcpStream, host: &str) -> Result<Io, ImapError> {
    let roots: RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
    let config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| ImapError::Tls(format!("{host}: {e}")))?;
    match tokio::time::timeout(STEP, TlsConnector::from(Arc::new(config)).connect(name, tcp)).await {
        Ok(Ok(stream)) => Ok(Box::new(stream)),
        Ok(Err(e)) => Err(ImapError::Tls(e.to_string())),
        Err(_) => Err(ImapError::Timeout("the TLS handshake")),
    }
}

/// `1,2,5` for a few UIDs (a set, as UID FETCH takes it).
fn uid_set(uids: &[u32]) -> String {
    uids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Connects, logs in, opens the folder and says what it found: the
/// admin's "test connection".
pub async fn test_connection(settings: &ImapSettings) -> Result<String, ImapError> {
    let (connection, state) = Connection::open(settings).await?;
    let idle = connection.offers_idle();
    connection.logout().await;
    Ok(format!(
        "Connected; {} holds {} message(s){}.",
        settings.folder,
        state.exists,
        if idle { "; the server offers IDLE, so new mail is fetched at once" } else { "; polling (no IDLE)" }
    ))
}
