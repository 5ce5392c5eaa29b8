//! Configuration: built-in defaults, then an optional `docket.toml`, then
//! `DOCKET_*` environment variables, which win.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// Everything the server needs to know to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one (printed at start).
    pub listen: String,
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// Where attachments (and the default SQLite file) live.
    pub data_dir: PathBuf,
    /// Largest attachment accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Largest JSON request body, in bytes.
    pub max_json_bytes: usize,
    /// Mark cookies `Secure` (set this behind HTTPS).
    pub secure_cookies: bool,
    /// How long a browser session lasts without logging in again.
    pub session_hours: i64,
    /// Password for the `admin` created on an empty database; random and
    /// printed once when unset.
    pub admin_password: Option<String>,
    /// `text` (default) or `json` logs.
    pub log_format: String,
    /// PostgreSQL connections per node (SQLite: readers).
    pub max_connections: u32,
    /// Seconds a stream email waits before it is sent (authors may fix
    /// typos; readers who saw it in-app get no email).
    pub email_delay_secs: u64,
    /// The address users reach Docket at, for links in emails.
    pub public_url: String,
    /// Seconds before the first retry of a failed job (doubling after).
    pub job_retry_base_secs: u64,
    /// Days the rule run log is kept.
    pub rule_runs_days: i64,
    /// Limits of a plugin call unless the plugin overrides them (fuel,
    /// memory, time), each at most the host's ceiling.
    pub plugin_limits: docket_plugins::Limits,
    /// How many storage keys one plugin may hold.
    pub plugin_storage_keys: u64,
    /// Seconds between checks of a mailbox whose server has no IDLE (and
    /// the longest IDLE wait before checking anyway).
    pub mail_poll_secs: u64,
    /// Public case forms: submissions per hour from one IP address, and
    /// for one email address.
    pub web_form_per_ip_hour: u32,
    pub web_form_per_address_hour: u32,
}

/// The shape of `docket.toml`; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    max_upload_bytes: Option<u64>,
    max_json_bytes: Option<usize>,
    secure_cookies: Option<bool>,
    session_hours: Option<i64>,
    admin_password: Option<String>,
    log_format: Option<String>,
    max_connections: Option<u32>,
    email_delay_secs: Option<u64>,
    public_url: Option<String>,
    job_retry_base_secs: Option<u64>,
    rule_runs_days: Option<i64>,
    plugin_fuel: Option<u64>,
    plugin_memory_mb: Option<u64>,
    plugin_timeout_ms: Option<u64>,
    plugin_storage_keys: Option<u64>,
    mail_poll_secs: Option<u64>,
    web_form_per_ip_hour: Option<u32>,
    web_form_per_address_hour: Option<u32>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_DATA_DIR: &str = "docket-data";
/// 25 MB, as the issue and most mail servers agree on.
const DEFAULT_MAX_UPLOAD: u64 = 25 * 1024 * 1024;
const DEFAULT_MAX_JSON: usize = 1024 * 1024;

impl Config {
    /// Loads the file (when given) and applies the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<FileConfig>(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        Self::resolve(from_file, |key| std::env::var(key).ok())
    }

    fn resolve(file: FileConfig, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let data_dir =
            env("DOCKET_DATA_DIR").map(PathBuf::from).or(file.data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let database_url = env("DOCKET_DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("docket.db").display()));
        let host = docket_plugins::HostConfig::default();
        let plugin_limits = docket_plugins::Limits {
            fuel: parse_env(&env, "DOCKET_PLUGIN_FUEL")?.or(file.plugin_fuel).unwrap_or(host.defaults.fuel),
            memory_bytes: parse_env::<u64>(&env, "DOCKET_PLUGIN_MEMORY_MB")?
                .or(file.plugin_memory_mb)
                .map_or(host.defaults.memory_bytes, |mb| mb.saturating_mul(1 << 20)),
            timeout_ms: parse_env(&env, "DOCKET_PLUGIN_TIMEOUT_MS")?
                .or(file.plugin_timeout_ms)
                .unwrap_or(host.defaults.timeout_ms),
        };
        let config = Config {
            listen: env("DOCKET_LISTEN").or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()),
            database_url,
            data_dir,
            max_upload_bytes: parse_env(&env, "DOCKET_MAX_UPLOAD_BYTES")?
                .or(file.max_upload_bytes)
                .unwrap_or(DEFAULT_MAX_UPLOAD),
            max_json_bytes: parse_env(&env, "DOCKET_MAX_JSON_BYTES")?
                .or(file.max_json_bytes)
                .unwrap_or(DEFAULT_MAX_JSON),
            secure_cookies: parse_env(&env, "DOCKET_SECURE_COOKIES")?.or(file.secure_cookies).unwrap_or(false),
            session_hours: parse_env(&env, "DOCKET_SESSION_HOURS")?.or(file.session_hours).unwrap_or(12),
            admin_password: env("DOCKET_ADMIN_PASSWORD").or(file.admin_password).filter(|p| !p.is_empty()),
            log_format: env("DOCKET_LOG_FORMAT").or(file.log_format).unwrap_or_else(|| "text".into()),
            max_connections: parse_env(&env, "DOCKET_MAX_CONNECTIONS")?.or(file.max_connections).unwrap_or(16),
            email_delay_secs: parse_env(&env, "DOCKET_EMAIL_DELAY_SECONDS")?.or(file.email_delay_secs).unwrap_or(30),
            public_url: env("DOCKET_PUBLIC_URL").or(file.public_url).unwrap_or_default(),
            job_retry_base_secs: parse_env(&env, "DOCKET_JOB_RETRY_BASE_SECONDS")?
                .or(file.job_retry_base_secs)
                .unwrap_or(15)
                .max(1),
            rule_runs_days: parse_env(&env, "DOCKET_RULE_RUNS_DAYS")?.or(file.rule_runs_days).unwrap_or(90),
            plugin_limits,
            plugin_storage_keys: parse_env(&env, "DOCKET_PLUGIN_STORAGE_KEYS")?
                .or(file.plugin_storage_keys)
                .unwrap_or(host.max_storage_keys),
            mail_poll_secs: parse_env(&env, "DOCKET_MAIL_POLL_SECONDS")?.or(file.mail_poll_secs).unwrap_or(30),
            web_form_per_ip_hour: parse_env(&env, "DOCKET_WEB_FORM_PER_IP_HOUR")?
                .or(file.web_form_per_ip_hour)
                .unwrap_or(20),
            web_form_per_address_hour: parse_env(&env, "DOCKET_WEB_FORM_PER_ADDRESS_HOUR")?
                .or(file.web_form_per_address_hour)
                .unwrap_or(5),
        };
        if !(1..=3600).contains(&config.mail_poll_secs) {
            bail!("mail_poll_secs must be between 1 and 3600");
        }
        let (limits, ceiling) = (&config.plugin_limits, &host.ceiling);
        if !(1..=ceiling.fuel).contains(&limits.fuel) {
            bail!("plugin_fuel must be between 1 and {}", ceiling.fuel);
        }
        if !(1..=ceiling.memory_bytes >> 20).contains(&(limits.memory_bytes >> 20)) {
            bail!("plugin_memory_mb must be between 1 and {}", ceiling.memory_bytes >> 20);
        }
        if !(10..=ceiling.timeout_ms).contains(&limits.timeout_ms) {
            bail!("plugin_timeout_ms must be between 10 (the deadline's granularity) and {}", ceiling.timeout_ms);
        }
        if config.plugin_storage_keys == 0 {
            bail!("plugin_storage_keys must be positive");
        }
        if !(1..=3650).contains(&config.rule_runs_days) {
            bail!("rule_runs_days must be between 1 and 3650");
        }
        if config.max_upload_bytes == 0 {
            bail!("max_upload_bytes must be positive");
        }
        if !(1..=24 * 365).contains(&config.session_hours) {
            bail!("session_hours must be between 1 and 8760");
        }
        if !matches!(config.log_format.as_str(), "text" | "json") {
            bail!("log_format must be `text` or `json`");
        }
        Ok(config)
    }
}

fn parse_env<T: std::str::FromStr>(env: &impl Fn(&str) -> Option<String>, key: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match env(key) {
        Some(value) => value.trim().parse().map(Some).map_err(|e| anyhow::anyhow!("{key}={value}: {e}")),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_wins_over_file_and_defaults_fill_the_rest() {
        let file = FileConfig { listen: Some("0.0.0.0:1".into()), max_upload_bytes: Some(10), ..Default::default() };
        let config =
            Config::resolve(file, |key| (key == "DOCKET_LISTEN").then(|| "127.0.0.1:2".to_string())).expect("valid");
        assert_eq!(config.listen, "127.0.0.1:2");
        assert_eq!(config.max_upload_bytes, 10);
        assert_eq!(config.database_url, "sqlite://docket-data/docket.db");
    }

    #[test]
    fn data_dir_moves_the_default_database() {
        let config =
            Config::resolve(FileConfig::default(), |key| (key == "DOCKET_DATA_DIR").then(|| "/srv/d".to_string()))
                .expect("valid");
        assert_eq!(config.database_url, "sqlite:///srv/d/docket.db");
    }

    #[test]
    fn bad_values_are_explained() {
        let error = Config::resolve(FileConfig::default(), |key| {
            (key == "DOCKET_MAX_UPLOAD_BYTES").then(|| "lots".to_string())
        })
        .expect_err("invalid");
        assert!(error.to_string().contains("DOCKET_MAX_UPLOAD_BYTES"));
        assert!(toml::from_str::<FileConfig>("listn = 'x'").is_err());
    }

    #[test]
    fn plugin_defaults_are_configurable_within_the_ceiling() {
        let file = FileConfig { plugin_memory_mb: Some(32), plugin_storage_keys: Some(5), ..Default::default() };
        let config =
            Config::resolve(file, |key| (key == "DOCKET_PLUGIN_FUEL").then(|| "1000".to_string())).expect("valid");
        assert_eq!(config.plugin_limits.fuel, 1000);
        assert_eq!(config.plugin_limits.memory_bytes, 32 << 20);
        assert_eq!(config.plugin_limits.timeout_ms, docket_plugins::Limits::default().timeout_ms);
        assert_eq!(config.plugin_storage_keys, 5);
        let file = FileConfig { plugin_memory_mb: Some(100_000), ..Default::default() };
        let error = Config::resolve(file, |_| None).expect_err("above the ceiling");
        assert!(error.to_string().contains("plugin_memory_mb must be between 1 and 512"), "{error}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_example_config_file_is_valid() {
        let text = include_str!("../../../examples/docket.toml");
        let file: FileConfig = toml::from_str(text).expect("examples/docket.toml parses");
        let config = Config::resolve(file, |_| None).expect("and resolves");
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.max_upload_bytes, 25 * 1024 * 1024);
    }
}
