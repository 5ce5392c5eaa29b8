//! Budgets for one plugin call, and the host's configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What one call may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Fuel: roughly one unit per WebAssembly instruction.
    pub fuel: u64,
    /// Linear memory, in bytes (all the plugin's memories together).
    pub memory_bytes: u64,
    /// Wall-clock time, in milliseconds (enforced by epoch interruption,
    /// with a granularity of 10 ms).
    pub timeout_ms: u64,
}

impl Default for Limits {
    /// Generous for a rule deciding about one case (the C examples use
    /// a few thousand units of fuel and 128 KiB of memory; the Python one a
    /// few million units and about 30 MiB), small enough that a runaway
    /// plugin costs a transaction a fraction of a second.
    fn default() -> Self {
        Limits { fuel: 200_000_000, memory_bytes: 64 << 20, timeout_ms: 250 }
    }
}

/// Per-plugin changes to the defaults (from the manifest or the admin).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    #[serde(default)]
    pub fuel: Option<u64>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl Limits {
    /// The defaults with an override applied, each figure capped by
    /// `ceiling`.
    pub fn with(self, over: &LimitsOverride, ceiling: &Limits) -> Limits {
        Limits {
            fuel: over.fuel.unwrap_or(self.fuel).clamp(1, ceiling.fuel),
            memory_bytes: over.memory_bytes.unwrap_or(self.memory_bytes).clamp(64 << 10, ceiling.memory_bytes),
            timeout_ms: over.timeout_ms.unwrap_or(self.timeout_ms).clamp(10, ceiling.timeout_ms),
        }
    }
}

/// How the host is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled components are cached (keyed by the engine's
    /// settings and the component's bytes); `None` compiles every time a
    /// process loads a plugin.
    pub cache_dir: Option<PathBuf>,
    /// Limits of a plugin that does not override them.
    pub defaults: Limits,
    /// No override goes beyond these.
    pub ceiling: Limits,
    /// How many plugin instances may exist at once (the pooling
    /// allocator's slots); a call beyond that fails and is logged.
    pub max_instances: u32,
    /// How many storage keys one plugin may hold; setting a new key
    /// beyond that fails (the plugin sees the error), so a runaway plugin
    /// cannot fill the database.
    pub max_storage_keys: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: None,
            defaults: Limits::default(),
            ceiling: Limits { fuel: 10_000_000_000, memory_bytes: 512 << 20, timeout_ms: 10_000 },
            max_instances: 64,
            max_storage_keys: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_stay_under_the_ceiling() {
        let ceiling = HostConfig::default().ceiling;
        let limits = Limits::default()
            .with(&LimitsOverride { fuel: Some(5), memory_bytes: Some(u64::MAX), timeout_ms: None }, &ceiling);
        assert_eq!(limits.fuel, 5);
        assert_eq!(limits.memory_bytes, ceiling.memory_bytes);
        assert_eq!(limits.timeout_ms, Limits::default().timeout_ms);
    }
}
