//! What a component is: its world, WIT version, imports and exports, and
//! the capabilities its imports need. Read from the compiled component's
//! type, so that a plugin is refused at upload with a precise reason
//! rather than failing at its first call.

use std::collections::BTreeSet;

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::PluginError;
use crate::manifest::{Capability, Grants, SUPPORTED_WIT_VERSIONS, World};

const PACKAGE: &str = "docket:plugin/";

/// A component, described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub world: World,
    /// The version of `docket:plugin` it was built against.
    pub wit_version: String,
    /// Every import, such as `docket:plugin/host@0.1.0`.
    pub imports: Vec<String>,
    /// Every export.
    pub exports: Vec<String>,
    /// The functions of the `host` interface it calls.
    pub host_functions: Vec<String>,
    /// The capabilities those imports need.
    pub needs: BTreeSet<Capability>,
}

impl Inspection {
    /// Refuses a plugin whose imports need capabilities it was not granted,
    /// naming the first such import.
    pub fn check_grants(&self, grants: &Grants) -> Result<(), PluginError> {
        for capability in &self.needs {
            if grants.contains(capability) {
                continue;
            }
            let import = if *capability == Capability::Wasi {
                self.imports.iter().find(|i| i.starts_with("wasi:")).cloned().unwrap_or_else(|| "wasi".into())
            } else {
                let function = self
                    .host_functions
                    .iter()
                    .find(|f| Capability::for_host_function(f) == Some(Some(*capability)))
                    .cloned()
                    .unwrap_or_default();
                format!("{PACKAGE}host@{}#{function}", self.wit_version)
            };
            return Err(PluginError::NotGranted { capability: capability.to_string(), import });
        }
        Ok(())
    }
}

/// Splits `docket:plugin/host@0.1.0` into `("host", "0.1.0")`.
fn docket_interface(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix(PACKAGE)?.split_once('@')
}

/// Checks the version of a `docket:plugin` name against the supported
/// ones.
fn check_version(version: &str) -> Result<(), PluginError> {
    if SUPPORTED_WIT_VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(PluginError::UnsupportedVersion {
            found: version.to_string(),
            supported: SUPPORTED_WIT_VERSIONS.join(", "),
        })
    }
}

pub(crate) fn inspect(engine: &Engine, component: &Component) -> Result<Inspection, PluginError> {
    let ty = component.component_type();
    let mut imports = Vec::new();
    let mut host_functions = Vec::new();
    let mut needs = BTreeSet::new();
    let mut versions = BTreeSet::new();
    for (name, item) in ty.imports(engine) {
        imports.push(name.to_string());
        if name.starts_with("wasi:") {
            needs.insert(Capability::Wasi);
            continue;
        }
        let Some((interface, version)) = docket_interface(name) else {
            return Err(PluginError::Invalid(format!(
                "the plugin imports `{name}`, which Docket does not provide (only docket:plugin and, if granted, WASI)"
            )));
        };
        check_version(version)?;
        versions.insert(version.to_string());
        match interface {
            "types" => {}
            "host" => {
                let ComponentItem::ComponentInstance(instance) = item.ty else {
                    return Err(PluginError::Invalid(format!(
                        "the plugin imports `{name}` as something other than an interface"
                    )));
                };
                for (function, export) in instance.exports(engine) {
                    // The interface's types (`level`...) come along too.
                    if !matches!(export.ty, ComponentItem::ComponentFunc(_)) {
                        continue;
                    }
                    match Capability::for_host_function(function) {
                        Some(Some(capability)) => {
                            needs.insert(capability);
                        }
                        Some(None) => {}
                        None => {
                            return Err(PluginError::Invalid(format!(
                                "the plugin imports `{name}#{function}`, which this host does not provide"
                            )));
                        }
                    }
                    host_functions.push(function.to_string());
                }
            }
            other => {
                return Err(PluginError::Invalid(format!(
                    "the plugin imports `{PACKAGE}{other}`, which is not an interface plugins may import"
                )));
            }
        }
    }

    let mut exports = Vec::new();
    let mut worlds = Vec::new();
    for (name, _) in ty.exports(engine) {
        exports.push(name.to_string());
        if let Some((interface, version)) = docket_interface(name) {
            check_version(version)?;
            versions.insert(version.to_string());
            match World::ALL.into_iter().find(|w| w.handler() == interface) {
                Some(world) => worlds.push(world),
                None => {
                    return Err(PluginError::Invalid(format!(
                        "the plugin exports `{name}`, which is not a Docket handler"
                    )));
                }
            }
        }
    }
    let world = match worlds.as_slice() {
        [world] => *world,
        [] => {
            let expected: Vec<String> =
                World::ALL.iter().map(|w| format!("{PACKAGE}{}@{}", w.handler(), SUPPORTED_WIT_VERSIONS[0])).collect();
            return Err(PluginError::Invalid(format!(
                "the plugin exports no Docket handler (expected one of {}); is it built for one of the worlds in wit/?",
                expected.join(", ")
            )));
        }
        _ => {
            return Err(PluginError::Invalid(
                "the plugin exports more than one Docket handler; build one world per plugin".into(),
            ));
        }
    };
    if versions.len() > 1 {
        return Err(PluginError::Invalid(format!(
            "the plugin mixes versions of docket:plugin ({})",
            versions.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let wit_version = versions.into_iter().next().unwrap_or_default();
    Ok(Inspection { world, wit_version, imports, exports, host_functions, needs })
}
