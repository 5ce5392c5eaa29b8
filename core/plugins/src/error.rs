//! What can go wrong loading or running a plugin.

/// An error about a plugin: refused at upload or load time, or a call that
/// failed. Every message is written for the admin reading it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// Not a usable component (corrupt, a core module, wrong world,
    /// unknown imports) or a bad manifest.
    #[error("{0}")]
    Invalid(String),
    #[error("the plugin was built for docket:plugin@{found}; this server supports {supported}")]
    UnsupportedVersion { found: String, supported: String },
    #[error("the plugin imports `{import}`, which needs the `{capability}` capability, and it has not been granted")]
    NotGranted { capability: String, import: String },
    #[error("the plugin used up its fuel budget ({0} units)")]
    OutOfFuel(u64),
    #[error("the plugin ran past its time limit ({0} ms)")]
    Timeout(u64),
    #[error("the plugin tried to use more than its memory limit ({0} bytes)")]
    MemoryLimit(u64),
    #[error("the plugin trapped: {0}")]
    Trap(String),
    /// The plugin ran and returned its own `plugin-error`.
    #[error("the plugin returned an error: {code}: {message}")]
    Returned { code: String, message: String },
    /// The plugin returned something Docket cannot use (a value that is
    /// not JSON, a choice that is not a candidate...).
    #[error("the plugin returned an invalid result: {0}")]
    BadOutput(String),
    /// The host itself failed (a storage error, a broken cache directory).
    #[error("plugin host error: {0}")]
    Host(String),
}

impl PluginError {
    /// A stable name for the kind of error, for run logs and the API.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Invalid(_) => "invalid",
            PluginError::UnsupportedVersion { .. } => "unsupported_version",
            PluginError::NotGranted { .. } => "not_granted",
            PluginError::OutOfFuel(_) => "out_of_fuel",
            PluginError::Timeout(_) => "timeout",
            PluginError::MemoryLimit(_) => "memory_limit",
            PluginError::Trap(_) => "trap",
            PluginError::Returned { .. } => "plugin_error",
            PluginError::BadOutput(_) => "bad_output",
            PluginError::Host(_) => "host",
        }
    }

    /// Whether the plugin itself is unusable (as opposed to one call
    /// failing).
    pub fn is_load_error(&self) -> bool {
        matches!(
            self,
            PluginError::Invalid(_) | PluginError::UnsupportedVersion { .. } | PluginError::NotGranted { .. }
        )
    }
}
