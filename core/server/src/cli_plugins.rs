//! `docket plugin inspect` and `docket plugin run`: plugin authors check a
//! component and try it against a JSON event without a server. `run` uses
//! the same host as the server (same limits, same checks) with storage and
//! cases held in memory.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use docket_plugins::{
    AssignmentRequest, Call, CaseSnapshot, Grants, HostConfig, Inspection, Limits, MemoryIo, ParsedEmail, PluginHost,
    Report, RuleEvent, StepInput, World,
};
use serde::Serialize;
use serde_json::{Value, json};

fn host() -> anyhow::Result<PluginHost> {
    // The user's cache, so that running a large component again is quick.
    let cache_dir = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map(|dir| dir.join("docket").join("plugins"));
    PluginHost::new(HostConfig { cache_dir, ..HostConfig::default() }).context("starting the plugin host")
}

fn read_component(file: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}

fn read_json(file: &Path, what: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading the {what} {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("the {what} {} is not valid JSON", file.display()))
}

/// Prints what a component is and what it needs.
pub fn inspect(file: &Path) -> anyhow::Result<()> {
    let bytes = read_component(file)?;
    eprintln!("compiling {} ({} KiB)...", file.display(), bytes.len() / 1024);
    let inspection = host()?.inspect(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    print_inspection(&inspection, &bytes);
    Ok(())
}

fn print_inspection(inspection: &Inspection, bytes: &[u8]) {
    say!("world:        {}", inspection.world);
    say!("wit version:  docket:plugin@{}", inspection.wit_version);
    say!("size:         {} bytes (sha256 {})", bytes.len(), docket_plugins::component_hash(bytes));
    let needs: Vec<&str> = inspection.needs.iter().map(|c| c.as_str()).collect();
    say!("capabilities: {}", if needs.is_empty() { "none".to_string() } else { needs.join(", ") });
    say!("host calls:   {}", inspection.host_functions.join(", "));
    say!("imports:");
    for import in &inspection.imports {
        say!("  {import}");
    }
    say!("exports:");
    for export in &inspection.exports {
        say!("  {export}");
    }
}

/// The options of `docket plugin run`.
pub struct RunOptions {
    pub file: PathBuf,
    pub event: PathBuf,
    pub config: Option<PathBuf>,
    pub cases: Option<PathBuf>,
    pub storage: Option<PathBuf>,
    pub limits: Limits,
}

#[derive(Serialize)]
struct Printed<'a, T: Serialize> {
    world: &'a str,
    ok: bool,
    result: Option<T>,
    error: Option<String>,
    log: &'a [docket_plugins::LogLine],
    fuel_used: u64,
    peak_memory_bytes: u64,
    duration_us: u128,
    storage: std::collections::BTreeMap<String, String>,
}

/// Runs a component against an event and prints the result as JSON. The
/// component is granted every capability it imports (this is the
/// author's own machine); a server grants only what an admin chose.
pub fn run(options: RunOptions) -> anyhow::Result<bool> {
    let bytes = read_component(&options.file)?;
    let host = host()?;
    let inspection = host.inspect(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", options.file.display()))?;
    let grants: Grants = inspection.needs.clone();
    let prepared = host.prepare(&bytes, &grants).map_err(|e| anyhow::anyhow!("{}: {e}", options.file.display()))?;
    let config = match &options.config {
        Some(file) => read_json(file, "configuration")?,
        None => json!({}),
    };
    docket_plugins::validate_config(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let io = MemoryIo::default();
    if let Some(file) = &options.cases {
        let cases: Vec<CaseSnapshot> = serde_json::from_value(read_json(file, "cases file")?)
            .context("the cases file must be a JSON array of case snapshots")?;
        *io.cases.lock().unwrap_or_else(|e| e.into_inner()) = cases;
    }
    if let Some(file) = &options.storage {
        let storage = serde_json::from_value(read_json(file, "storage file")?)
            .context("the storage file must be a JSON object of strings")?;
        *io.storage.lock().unwrap_or_else(|e| e.into_inner()) = storage;
    }
    let event = read_json(&options.event, "event")?;
    let call = Call { config: config.to_string(), limits: options.limits, io: Box::new(io.clone()) };
    let shape = |e: serde_json::Error| {
        anyhow::anyhow!("the event does not fit a `{}` plugin: {e} (see plugins/README.md)", inspection.world)
    };
    let storage = || io.storage.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let world = inspection.world.as_str();
    let ok = match inspection.world {
        World::Rule => {
            let event: RuleEvent = serde_json::from_value(event).map_err(shape)?;
            print(world, prepared.run_rule(call, &event), storage())?
        }
        World::Assigner => {
            let request: AssignmentRequest = serde_json::from_value(event).map_err(shape)?;
            print(world, prepared.run_assigner(call, &request), storage())?
        }
        World::EmailParser => {
            let email: ParsedEmail = serde_json::from_value(event).map_err(shape)?;
            print(world, prepared.run_email_parser(call, &email), storage())?
        }
        World::ProcessStep => {
            let step: StepInput = serde_json::from_value(event).map_err(shape)?;
            print(world, prepared.run_process_step(call, &step), storage())?
        }
    };
    Ok(ok)
}

fn print<T: Serialize>(
    world: &str,
    report: Report<T>,
    storage: std::collections::BTreeMap<String, String>,
) -> anyhow::Result<bool> {
    let ok = report.outcome.is_ok();
    let (result, error) = match report.outcome {
        Ok(value) => (Some(value), None),
        Err(error) => (None, Some(format!("{}: {error}", error.kind()))),
    };
    let printed = Printed {
        world,
        ok,
        result,
        error,
        log: &report.log,
        fuel_used: report.fuel_used,
        peak_memory_bytes: report.peak_memory,
        duration_us: report.duration.as_micros(),
        storage,
    };
    say!("{}", serde_json::to_string_pretty(&printed)?);
    Ok(ok)
}

/// Parses `--memory-mb` and friends into limits, starting from the
/// server's defaults.
pub fn limits(fuel: Option<u64>, memory_mb: Option<u64>, timeout_ms: Option<u64>) -> anyhow::Result<Limits> {
    let defaults = Limits::default();
    let limits = Limits {
        fuel: fuel.unwrap_or(defaults.fuel),
        memory_bytes: memory_mb.map(|mb| mb << 20).unwrap_or(defaults.memory_bytes),
        timeout_ms: timeout_ms.unwrap_or(defaults.timeout_ms),
    };
    if limits.fuel == 0 || limits.memory_bytes == 0 || limits.timeout_ms == 0 {
        bail!("limits must be above zero");
    }
    Ok(limits)
}
