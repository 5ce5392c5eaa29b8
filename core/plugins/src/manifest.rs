//! The manifest a plugin is uploaded with: its name, version, world,
//! requested capabilities and default configuration.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::PluginError;
use crate::limits::LimitsOverride;

/// The WIT versions of `docket:plugin` this host runs.
pub const SUPPORTED_WIT_VERSIONS: &[&str] = &["0.1.0"];

/// What a plugin is for: one world of the WIT package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    Rule,
    Assigner,
    EmailParser,
    ProcessStep,
}

impl World {
    pub const ALL: [World; 4] = [World::Rule, World::Assigner, World::EmailParser, World::ProcessStep];

    pub fn as_str(self) -> &'static str {
        match self {
            World::Rule => "rule",
            World::Assigner => "assigner",
            World::EmailParser => "email-parser",
            World::ProcessStep => "process-step",
        }
    }

    /// The interface the world exports, such as `rule-handler`.
    pub fn handler(self) -> &'static str {
        match self {
            World::Rule => "rule-handler",
            World::Assigner => "assigner-handler",
            World::EmailParser => "email-parser-handler",
            World::ProcessStep => "process-step-handler",
        }
    }

    pub fn parse(text: &str) -> Option<World> {
        World::ALL.into_iter().find(|w| w.as_str() == text)
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission a plugin asks for and an admin grants. Plugins start with
/// none: `log`, `now` and `config` need no capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `storage-get`, `storage-set`, `storage-delete`: key-value storage
    /// scoped to the plugin.
    Storage,
    /// `get-case`: read-only case lookup.
    ReadCases,
    /// WASI 0.2, with an empty context: no files, no network, no
    /// environment. Runtimes such as CPython's import it.
    Wasi,
}

impl Capability {
    pub const ALL: [Capability; 3] = [Capability::Storage, Capability::ReadCases, Capability::Wasi];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Storage => "storage",
            Capability::ReadCases => "read-cases",
            Capability::Wasi => "wasi",
        }
    }

    pub fn parse(text: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The capability a function of the `host` interface needs: `None`
    /// for a function this host does not provide, `Some(None)` for one
    /// that is always granted.
    pub fn for_host_function(name: &str) -> Option<Option<Capability>> {
        HOST_FUNCTIONS.iter().find(|(function, _)| *function == name).map(|(_, capability)| *capability)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every function of the `host` interface and the capability it needs.
pub const HOST_FUNCTIONS: &[(&str, Option<Capability>)] = &[
    ("log", None),
    ("now", None),
    ("config", None),
    ("storage-get", Some(Capability::Storage)),
    ("storage-set", Some(Capability::Storage)),
    ("storage-delete", Some(Capability::Storage)),
    ("get-case", Some(Capability::ReadCases)),
];

/// The capabilities an admin granted a plugin.
pub type Grants = BTreeSet<Capability>;

/// What a plugin author ships next to the component (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lower-case letters, digits and dashes; unique on a server.
    pub name: String,
    /// `MAJOR.MINOR.PATCH`.
    pub version: String,
    pub world: World,
    #[serde(default)]
    pub description: String,
    /// What the plugin asks for; the admin decides what it gets.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// The default configuration (a JSON object), which the admin edits.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// Limits the plugin needs beyond the server's defaults (the admin
    /// can change them; the server's maximum still applies).
    #[serde(default)]
    pub limits: LimitsOverride,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl Manifest {
    /// Reads and checks a manifest.
    pub fn parse(json: &str) -> Result<Manifest, PluginError> {
        let manifest: Manifest =
            serde_json::from_str(json).map_err(|e| PluginError::Invalid(format!("the manifest is not valid: {e}")))?;
        manifest.validate()?;
        Ok(manifest)
    }

    pub fn validate(&self) -> Result<(), PluginError> {
        validate_name(&self.name)?;
        validate_version(&self.version)?;
        if self.description.chars().count() > 1000 {
            return Err(PluginError::Invalid("the manifest's description is longer than 1,000 characters".into()));
        }
        validate_config(&self.config)?;
        Ok(())
    }

    pub fn requested(&self) -> Grants {
        self.capabilities.iter().copied().collect()
    }
}

/// Plugin names: 1 to 63 lower-case letters, digits and dashes, starting
/// with a letter or digit (they appear in URLs and in `assign_by`).
pub fn validate_name(name: &str) -> Result<(), PluginError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(PluginError::Invalid(format!(
            "plugin name `{name}`: use 1 to 63 lower-case letters, digits and dashes, not starting with a dash"
        )))
    }
}

fn validate_version(version: &str) -> Result<(), PluginError> {
    let parts: Vec<&str> = version.split('.').collect();
    let ok = parts.len() == 3
        && parts.iter().all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(PluginError::Invalid(format!("plugin version `{version}`: use MAJOR.MINOR.PATCH, such as 1.0.0")))
    }
}

/// Configuration is a JSON object of at most 64 KiB.
pub fn validate_config(config: &serde_json::Value) -> Result<(), PluginError> {
    if !config.is_object() {
        return Err(PluginError::Invalid("the plugin configuration must be a JSON object".into()));
    }
    if config.to_string().len() > 64 * 1024 {
        return Err(PluginError::Invalid("the plugin configuration is larger than 64 KiB".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_checked() {
        let good = r#"{"name": "vip-escalation", "version": "1.0.0", "world": "rule", "capabilities": ["storage"]}"#;
        let manifest = Manifest::parse(good).expect("valid");
        assert_eq!(manifest.world, World::Rule);
        assert_eq!(manifest.requested(), Grants::from([Capability::Storage]));
        assert!(manifest.config.is_object());

        for (bad, says) in [
            (r#"{"name": "Bad Name", "version": "1.0.0", "world": "rule"}"#, "plugin name"),
            (r#"{"name": "ok", "version": "1.0", "world": "rule"}"#, "MAJOR.MINOR.PATCH"),
            (r#"{"name": "ok", "version": "1.0.0", "world": "printer"}"#, "unknown variant `printer`"),
            (r#"{"name": "ok", "version": "1.0.0", "world": "rule", "capabilities": ["root"]}"#, "unknown variant"),
            (r#"{"name": "ok", "version": "1.0.0", "world": "rule", "config": [1]}"#, "JSON object"),
            (r#"{"name": "ok", "version": "1.0.0", "world": "rule", "extra": 1}"#, "unknown field"),
            ("not json", "not valid"),
        ] {
            let error = Manifest::parse(bad).expect_err(bad).to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn host_functions_map_to_capabilities() {
        assert_eq!(Capability::for_host_function("log"), Some(None));
        assert_eq!(Capability::for_host_function("storage-set"), Some(Some(Capability::Storage)));
        assert_eq!(Capability::for_host_function("get-case"), Some(Some(Capability::ReadCases)));
        assert_eq!(Capability::for_host_function("launch-missiles"), None);
    }
}
