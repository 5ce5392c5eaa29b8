//! `docket`: the Docket case-management server and its admin commands.

/// Prints a line of a command's output. When the reader has gone away
/// (`docket apikey create | head -1`), the command ends quietly, as Unix
/// tools do, where `println!` would panic.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say_line(format_args!($($arg)*))
    };
}

mod api;
mod app;
mod cli_plugins;
mod cli_rules;
mod config;
mod demo;
mod error;
mod extract;
mod fetcher;
mod jobs;
mod limiter;
mod mail;
mod metrics;
mod rule_jobs;
mod secrets;
mod ui;
mod web_form;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use docket_domain::user::{NewUser, UserType};
use docket_store::{Store, StoreOptions};

use crate::app::AppState;
use crate::config::Config;

/// Docket: an open-source helpdesk. Cases, streams, rules and email.
///
/// Configuration comes from `--config FILE` (TOML) and DOCKET_* environment
/// variables, which win: DOCKET_LISTEN (default 127.0.0.1:8080),
/// DOCKET_DATABASE_URL (default sqlite://docket-data/docket.db; or
/// postgres://...), DOCKET_DATA_DIR (attachments; default docket-data),
/// DOCKET_MAX_UPLOAD_BYTES (default 25 MB), DOCKET_ADMIN_PASSWORD,
/// DOCKET_SECURE_COOKIES, DOCKET_LOG_FORMAT (text|json), DOCKET_LOG.
#[derive(Parser)]
#[command(name = "docket", version, about, long_about)]
struct Cli {
    /// A docket.toml file with settings (see examples/docket.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: migrates the database, creates the `admin` user on
    /// an empty one (password from DOCKET_ADMIN_PASSWORD or printed once),
    /// then serves HTTP until Ctrl-C or SIGTERM.
    Serve {
        /// Also load demo data (users, teams, accounts, contacts, cases),
        /// once, and print the logins.
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Import, export and test workflow rules (rhai files; see docs/rules.md).
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Check and try WebAssembly plugins without a server (plugins/README.md).
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Print a component's world, WIT version, imports, exports and the
    /// capabilities it needs.
    Inspect { file: PathBuf },
    /// Run a component against a JSON event (a rule event, an assignment
    /// request, a parsed email or a process step, by world) and print the
    /// result, its log, the fuel used, peak memory and time. Exits 1 if the
    /// plugin failed.
    Run {
        file: PathBuf,
        #[arg(long, value_name = "EVENT.json")]
        event: PathBuf,
        /// The plugin's configuration (a JSON object). Not `--config`,
        /// which names docket.toml.
        #[arg(long = "plugin-config", value_name = "CONFIG.json")]
        plugin_config: Option<PathBuf>,
        /// Cases `get-case` finds (a JSON array of case snapshots).
        #[arg(long, value_name = "CASES.json")]
        cases: Option<PathBuf>,
        /// The plugin's storage before the call (a JSON object).
        #[arg(long, value_name = "STORAGE.json")]
        storage: Option<PathBuf>,
        #[arg(long)]
        fuel: Option<u64>,
        #[arg(long)]
        memory_mb: Option<u64>,
        #[arg(long)]
        timeout_ms: Option<u64>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Import rule files (or folders of them, e.g. examples/rules): a rule
    /// with the same name is replaced. All files are checked first.
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write every rule to a folder, one .rhai file each.
    Export { dir: PathBuf },
    /// Dry run: what a rule file would do to a case, changing nothing.
    Test {
        file: PathBuf,
        /// The case number to test against.
        #[arg(long)]
        case: Option<i64>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password comes from --password, else the
    /// DOCKET_USER_PASSWORD variable, else a random one is printed.
    Create {
        #[arg(long)]
        username: String,
        /// admin, agent, portal or api.
        #[arg(long = "type", default_value = "agent")]
        user_type: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long, env = "DOCKET_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Role names (repeatable). Agents and API users get "Agent" when
        /// none is given.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create an API key for a user and print it (shown only this once).
    Create {
        /// The username the key acts as.
        #[arg(long)]
        user: String,
        /// A label to recognise the key by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    init_logging(&config);
    match cli.command {
        Command::Serve { demo } => serve(config, demo).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            store.close().await;
            say!("migrations applied to {}", redact(&config.database_url));
            Ok(())
        }
        Command::User { command: UserCommand::Create { username, user_type, name, email, password, roles } } => {
            create_user(&config, username, &user_type, name, email, password, roles).await
        }
        Command::Plugin { command: PluginCommand::Inspect { file } } => cli_plugins::inspect(&file),
        Command::Plugin {
            command: PluginCommand::Run { file, event, plugin_config, cases, storage, fuel, memory_mb, timeout_ms },
        } => {
            let limits = cli_plugins::limits(fuel, memory_mb, timeout_ms)?;
            let options = cli_plugins::RunOptions { file, event, config: plugin_config, cases, storage, limits };
            if !tokio::task::spawn_blocking(move || cli_plugins::run(options)).await?? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Rules { command } => {
            let store = open_store(&config).await?;
            let result = match command {
                RulesCommand::Import { paths } => cli_rules::import(&store, &paths).await,
                RulesCommand::Export { dir } => cli_rules::export(&store, &dir).await,
                RulesCommand::Test { file, case } => cli_rules::test(&store, &file, case).await,
            };
            store.close().await;
            result
        }
        Command::Apikey { command: ApikeyCommand::Create { user, name } } => {
            let store = open_store(&config).await?;
            let (key, prefix, hash) = secrets::new_api_key();
            let record = store.create_api_key_for_username(&user, &name, &prefix, &hash).await?;
            store.close().await;
            say!("API key for {user} (id {}): {key}", record.id);
            say!("Store it now: it is not shown again.");
            Ok(())
        }
    }
}

/// See `say!`.
fn say_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    match writeln!(std::io::stdout(), "{line}") {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("docket: could not write the output: {error}");
            std::process::exit(1);
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let options = StoreOptions {
        max_connections: config.max_connections,
        email_delay: std::time::Duration::from_secs(config.email_delay_secs),
        job_retry_base: std::time::Duration::from_secs(config.job_retry_base_secs),
        // Compiled plugins are cached next to the attachments.
        plugins: docket_plugins::HostConfig {
            // wasmtime wants an absolute cache path.
            cache_dir: std::path::absolute(config.data_dir.join("plugin-cache")).ok(),
            defaults: config.plugin_limits,
            max_storage_keys: config.plugin_storage_keys,
            ..docket_plugins::HostConfig::default()
        },
        ..StoreOptions::default()
    };
    Store::open(&config.database_url, &options)
        .await
        .with_context(|| format!("opening the database at {}", redact(&config.database_url)))
}

/// The URL without a password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let store = open_store(&config).await?;
    let (password, generated) = match &config.admin_password {
        Some(password) => (password.clone(), false),
        None => (secrets::random_password(), true),
    };
    if store.bootstrap(secrets::hash_password(password.clone()).await?).await? {
        if generated {
            println!("Created the admin user: username `admin`, password `{password}` (shown only now)");
        } else {
            println!("Created the admin user `admin` with the password from DOCKET_ADMIN_PASSWORD");
        }
    }
    if demo {
        demo::load(&store).await?;
    }
    // Fail at start, not at the first page, if a template is broken.
    let state = AppState::new(store, config)?;
    app::serve(state).await
}

async fn create_user(
    config: &Config,
    username: String,
    user_type: &str,
    name: Option<String>,
    email: Option<String>,
    password: Option<String>,
    roles: Vec<String>,
) -> anyhow::Result<()> {
    let user_type = UserType::parse(user_type).map_err(|e| anyhow::anyhow!("--type: {e}"))?;
    let store = open_store(config).await?;
    let roles = if roles.is_empty() && matches!(user_type, UserType::Agent | UserType::Api) {
        vec!["Agent".to_string()]
    } else {
        roles
    };
    let mut role_ids = Vec::new();
    for role in &roles {
        match store.role_id_by_name(role).await? {
            Some(id) => role_ids.push(id),
            None => bail!("no role named `{role}`"),
        }
    }
    let (password, generated) = match password {
        Some(password) => (Some(password), false),
        None if user_type == UserType::Api => (None, false),
        None => (Some(secrets::random_password()), true),
    };
    let mut new = NewUser {
        username,
        name,
        email,
        user_type,
        is_active: true,
        role_ids,
        password: password.clone(),
        ..Default::default()
    };
    new.validate().map_err(|e| anyhow::anyhow!("{}", e.summary()))?;
    let hash = match password.clone() {
        Some(password) => Some(secrets::hash_password(password).await?),
        None => None,
    };
    let admin = demo::system_admin(&store).await?;
    let user = store.create_user(&admin, &new, hash).await.map_err(|e| match e {
        docket_store::StoreError::Invalid(errors) => anyhow::anyhow!("{}", errors.summary()),
        other => anyhow::Error::new(other),
    })?;
    store.close().await;
    say!("Created {} user `{}` (id {})", user.user_type.as_str(), user.username, user.id);
    if generated && let Some(password) = password {
        say!("Password: {password} (shown only now)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://docket-data/docket.db"), "sqlite://docket-data/docket.db");
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
