//! What a plugin call carries in its wasmtime `Store`: the grants, the
//! configuration, the run log, the memory accounting, the I/O the host
//! functions use, and (only when granted) an empty WASI context.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::v0_1_0::{host, types};
use crate::manifest::{Capability, Grants};
use crate::records::CaseSnapshot;

/// At most this many log lines per call, each cut to `MAX_LOG_CHARS`.
pub const MAX_LOG_LINES: usize = 100;
pub const MAX_LOG_CHARS: usize = 1000;
/// Storage keys and values a plugin may write.
pub const MAX_KEY_BYTES: usize = 200;
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Where the host functions that touch data go. The server answers from
/// the transaction of the change that called the plugin; `MemoryIo`
/// answers from memory (for `docket plugin run` and tests).
pub trait PluginIo: Send {
    fn storage_get(&mut self, key: &str) -> Result<Option<String>, String>;
    fn storage_set(&mut self, key: &str, value: &str) -> Result<SetOutcome, String>;
    fn storage_delete(&mut self, key: &str) -> Result<(), String>;
    fn get_case(&mut self, number: i64) -> Result<Option<CaseSnapshot>, String>;
}

/// What became of a storage write that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOutcome {
    Stored,
    /// The plugin holds as many keys as it may: the plugin gets a
    /// `storage-full` error with this message (its call goes on).
    Full(String),
}

/// Storage and cases held in memory. Clones share the same data, so a
/// caller can keep one and read what a plugin stored.
#[derive(Debug, Clone, Default)]
pub struct MemoryIo {
    pub storage: Arc<Mutex<BTreeMap<String, String>>>,
    pub cases: Arc<Mutex<Vec<CaseSnapshot>>>,
}

impl MemoryIo {
    fn storage(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        // A panic while holding the lock left plain data behind: use it.
        self.storage.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl PluginIo for MemoryIo {
    fn storage_get(&mut self, key: &str) -> Result<Option<String>, String> {
        Ok(self.storage().get(key).cloned())
    }
    fn storage_set(&mut self, key: &str, value: &str) -> Result<SetOutcome, String> {
        self.storage().insert(key.to_string(), value.to_string());
        Ok(SetOutcome::Stored)
    }
    fn storage_delete(&mut self, key: &str) -> Result<(), String> {
        self.storage().remove(key);
        Ok(())
    }
    fn get_case(&mut self, number: i64) -> Result<Option<CaseSnapshot>, String> {
        let cases = self.cases.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(cases.iter().find(|c| c.number == number).cloned())
    }
}

/// A line the plugin logged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    pub level: String,
    pub message: String,
}

/// Raised (as a trap) by a host function; the host turns it back into a
/// `PluginError` for the run log.
#[derive(Debug, thiserror::Error)]
pub enum HostTrap {
    #[error("the plugin called `{function}`, which needs the `{capability}` capability, not granted")]
    NotGranted { function: &'static str, capability: Capability },
    #[error("`{function}` failed: {message}")]
    Io { function: &'static str, message: String },
}

pub struct PluginState {
    grants: Grants,
    config: String,
    io: Box<dyn PluginIo>,
    pub(crate) log: Vec<LogLine>,
    memory_cap: usize,
    /// The largest total of linear memory the plugin asked for.
    pub(crate) peak_memory: usize,
    memory_total: usize,
    pub(crate) hit_memory_cap: bool,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl PluginState {
    pub fn new(grants: Grants, config: String, io: Box<dyn PluginIo>, memory_cap: u64) -> PluginState {
        PluginState {
            grants,
            config,
            io,
            log: Vec::new(),
            memory_cap: usize::try_from(memory_cap).unwrap_or(usize::MAX),
            peak_memory: 0,
            memory_total: 0,
            hit_memory_cap: false,
            // Empty: no arguments, environment, files, sockets or stdio.
            // Only linked for plugins granted `wasi`.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        }
    }

    fn require(&self, function: &'static str, capability: Capability) -> wasmtime::Result<()> {
        if self.grants.contains(&capability) {
            Ok(())
        } else {
            Err(HostTrap::NotGranted { function, capability }.into())
        }
    }
}

fn io_trap(function: &'static str) -> impl FnOnce(String) -> wasmtime::Error {
    move |message| HostTrap::Io { function, message }.into()
}

impl types::Host for PluginState {}

impl host::Host for PluginState {
    fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        if self.log.len() < MAX_LOG_LINES {
            let level = match level {
                host::Level::Debug => "debug",
                host::Level::Info => "info",
                host::Level::Warn => "warn",
                host::Level::Error => "error",
            };
            let message: String = message.chars().take(MAX_LOG_CHARS).collect();
            self.log.push(LogLine { level: level.to_string(), message });
        }
        Ok(())
    }

    fn now(&mut self) -> wasmtime::Result<i64> {
        Ok(chrono::Utc::now().timestamp_millis())
    }

    fn config(&mut self) -> wasmtime::Result<String> {
        Ok(self.config.clone())
    }

    fn storage_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.require("storage-get", Capability::Storage)?;
        self.io.storage_get(&key).map_err(io_trap("storage-get"))
    }

    fn storage_set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), types::PluginError>> {
        self.require("storage-set", Capability::Storage)?;
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Ok(Err(types::PluginError {
                code: "bad-key".into(),
                message: format!("storage keys are 1 to {MAX_KEY_BYTES} bytes"),
            }));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Ok(Err(types::PluginError {
                code: "too-large".into(),
                message: format!("storage values are at most {MAX_VALUE_BYTES} bytes"),
            }));
        }
        match self.io.storage_set(&key, &value).map_err(io_trap("storage-set"))? {
            SetOutcome::Stored => Ok(Ok(())),
            SetOutcome::Full(message) => Ok(Err(types::PluginError { code: "storage-full".into(), message })),
        }
    }

    fn storage_delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.require("storage-delete", Capability::Storage)?;
        self.io.storage_delete(&key).map_err(io_trap("storage-delete"))
    }

    fn get_case(&mut self, number: i64) -> wasmtime::Result<Option<types::CaseSnapshot>> {
        self.require("get-case", Capability::ReadCases)?;
        let case = self.io.get_case(number).map_err(io_trap("get-case"))?;
        Ok(case.map(|c| crate::convert::snapshot_to_wit(&c)))
    }
}

/// Counts every linear memory the plugin has, so that the cap is on the
/// total (a component has several core instances, each may have one).
impl ResourceLimiter for PluginState {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Every growth (and the creation of a memory, from 0) adds its
        // difference to the total.
        let total = self.memory_total + desired.saturating_sub(current);
        if total > self.memory_cap {
            self.hit_memory_cap = true;
            // Trap rather than let `memory.grow` return -1: a plugin that
            // ignores a failed allocation would otherwise go on and fail
            // in some less clear way.
            return Err(wasmtime::Error::msg(format!("memory limit of {} bytes reached", self.memory_cap)));
        }
        self.memory_total = total;
        self.peak_memory = self.peak_memory.max(total);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::v0_1_0::host::Host as _;

    fn state(grants: &[Capability]) -> PluginState {
        let io = MemoryIo::default();
        PluginState::new(grants.iter().copied().collect(), r#"{"a": 1}"#.into(), Box::new(io), 1 << 20)
    }

    #[test]
    fn host_functions_check_grants_on_every_call() {
        let mut none = state(&[]);
        let error = none.storage_get("k".into()).expect_err("not granted");
        assert!(error.to_string().contains("`storage`"), "{error}");
        assert!(none.get_case(1).is_err());
        // Always granted:
        assert_eq!(none.config().expect("config"), r#"{"a": 1}"#);
        assert!(none.now().expect("now") > 1_700_000_000_000);

        let mut granted = state(&[Capability::Storage]);
        assert_eq!(granted.storage_get("k".into()).expect("get"), None);
        granted.storage_set("k".into(), "v".into()).expect("set").expect("stored");
        assert_eq!(granted.storage_get("k".into()).expect("get").as_deref(), Some("v"));
        granted.storage_delete("k".into()).expect("delete");
        assert_eq!(granted.storage_get("k".into()).expect("get"), None);
    }

    #[test]
    fn storage_limits_are_errors_the_plugin_sees() {
        let mut granted = state(&[Capability::Storage]);
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        let refused = granted.storage_set(long_key, "v".into()).expect("no trap").expect_err("refused");
        assert_eq!(refused.code, "bad-key");
        let big = "v".repeat(MAX_VALUE_BYTES + 1);
        let refused = granted.storage_set("k".into(), big).expect("no trap").expect_err("refused");
        assert_eq!(refused.code, "too-large");
    }

    #[test]
    fn the_log_is_bounded() {
        let mut plugin = state(&[]);
        for _ in 0..(MAX_LOG_LINES + 10) {
            plugin.log(host::Level::Info, "x".repeat(MAX_LOG_CHARS * 2)).expect("log");
        }
        assert_eq!(plugin.log.len(), MAX_LOG_LINES);
        assert_eq!(plugin.log[0].message.chars().count(), MAX_LOG_CHARS);
    }

    #[test]
    fn memory_is_capped_in_total() {
        let mut plugin = state(&[]);
        assert!(plugin.memory_growing(0, 512 << 10, None).expect("first memory"));
        assert!(plugin.memory_growing(0, 256 << 10, None).expect("second memory"));
        assert!(plugin.memory_growing(512 << 10, 768 << 10, None).expect("growth within the cap"));
        assert!(plugin.memory_growing(256 << 10, 512 << 10, None).is_err(), "1.25 MiB is over the 1 MiB cap");
        assert!(plugin.hit_memory_cap);
        assert_eq!(plugin.peak_memory, 1 << 20);
    }
}
