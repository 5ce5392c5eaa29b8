//! The wasmtime host: one engine, compiled components cached (on disk by
//! wasmtime, keyed by the engine's settings; in memory as `InstancePre`s),
//! and a fresh `Store` per call with fuel, an epoch deadline and a memory
//! cap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use crate::PluginError;
use crate::bindings::v0_1_0::{assigner, email_parser, process_step, rule};
use crate::convert;
use crate::inspect::{Inspection, inspect};
use crate::limits::{HostConfig, Limits};
use crate::manifest::{Capability, Grants, World};
use crate::records::{AssignmentRequest, EmailDecision, ParsedEmail, RuleEvent, StepInput, StepOutput};
use crate::state::{HostTrap, LogLine, PluginIo, PluginState};

/// How often the epoch advances: the granularity of time limits.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Runs plugins. Cheap to share (`Arc`); every method takes `&self`.
pub struct PluginHost {
    engine: Engine,
    /// Host functions only.
    linker: Linker<PluginState>,
    /// Host functions and WASI, for plugins granted `wasi`.
    wasi_linker: Linker<PluginState>,
    config: HostConfig,
    /// Prepared plugins by (component hash, grants).
    prepared: Mutex<HashMap<(String, Grants), Arc<Prepared>>>,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// The SHA-256 of a component's bytes, in hex: its identity in caches
/// and in the registry.
pub fn component_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl PluginHost {
    pub fn new(config: HostConfig) -> Result<PluginHost, PluginError> {
        let mut wasm = Config::new();
        wasm.consume_fuel(true);
        wasm.epoch_interruption(true);
        // Plugins get a small stack: deep recursion traps early.
        wasm.max_wasm_stack(512 << 10);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(config.max_instances);
        pool.total_core_instances(config.max_instances * 64);
        pool.total_memories(config.max_instances * 4);
        pool.total_tables(config.max_instances * 8);
        pool.total_stacks(config.max_instances);
        // componentize-py components have about 40 core instances.
        pool.max_core_instances_per_component(64);
        pool.max_memories_per_component(8);
        pool.max_tables_per_component(16);
        pool.max_memory_size(usize::try_from(config.ceiling.memory_bytes).unwrap_or(usize::MAX));
        // Runtimes such as CPython have large function tables and
        // instances with many globals.
        pool.table_elements(100_000);
        pool.max_core_instance_size(4 << 20);
        pool.max_component_instance_size(4 << 20);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| PluginError::Host(format!("cannot create the plugin cache {}: {e}", dir.display())))?;
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            let cache = Cache::new(cache).map_err(|e| PluginError::Host(format!("plugin cache: {e:#}")))?;
            wasm.cache(Some(cache));
        }
        let engine = Engine::new(&wasm).map_err(|e| PluginError::Host(format!("cannot start wasmtime: {e:#}")))?;

        let mut linker = Linker::new(&engine);
        rule::Rule::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |state| state)
            .map_err(|e| PluginError::Host(format!("{e:#}")))?;
        let mut wasi_linker = linker.clone();
        wasmtime_wasi::p2::add_to_linker_sync(&mut wasi_linker).map_err(|e| PluginError::Host(format!("{e:#}")))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (ticking, stop) = (engine.weak(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticking.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| PluginError::Host(format!("cannot start the epoch thread: {e}")))?;

        Ok(PluginHost { engine, linker, wasi_linker, config, prepared: Mutex::default(), ticker_stop })
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// Compiles a component (or finds it in the cache) and describes it.
    pub fn inspect(&self, bytes: &[u8]) -> Result<Inspection, PluginError> {
        let component = self.compile(bytes)?;
        inspect(&self.engine, &component)
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, PluginError> {
        check_header(bytes)?;
        Component::new(&self.engine, bytes).map_err(|e| {
            PluginError::Invalid(format!("the file is not a valid WebAssembly component: {}", e.root_cause()))
        })
    }

    /// A plugin ready to run with these grants: compiled, checked against
    /// the supported WIT versions and the grants, and linked. Cached, so
    /// the second call for the same bytes and grants costs a lookup.
    pub fn prepare(&self, bytes: &[u8], grants: &Grants) -> Result<Arc<Prepared>, PluginError> {
        let hash = component_hash(bytes);
        if let Some(prepared) = self.prepared(&hash, grants) {
            return Ok(prepared);
        }
        let component = self.compile(bytes)?;
        let inspection = inspect(&self.engine, &component)?;
        inspection.check_grants(grants)?;
        let linker = if grants.contains(&Capability::Wasi) { &self.wasi_linker } else { &self.linker };
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Invalid(format!("the plugin cannot be linked: {}", e.root_cause())))?;
        let link = |e: wasmtime::Error| PluginError::Invalid(format!("the plugin does not match its world: {e:#}"));
        let pre = match inspection.world {
            World::Rule => Pre::Rule(rule::RulePre::new(instance_pre).map_err(link)?),
            World::Assigner => Pre::Assigner(assigner::AssignerPre::new(instance_pre).map_err(link)?),
            World::EmailParser => Pre::EmailParser(email_parser::EmailParserPre::new(instance_pre).map_err(link)?),
            World::ProcessStep => Pre::ProcessStep(process_step::ProcessStepPre::new(instance_pre).map_err(link)?),
        };
        let prepared = Arc::new(Prepared {
            hash: hash.clone(),
            inspection,
            grants: grants.clone(),
            pre,
            engine: self.engine.clone(),
        });
        let mut cache = self.prepared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.insert((hash, grants.clone()), prepared.clone());
        Ok(prepared)
    }

    /// A plugin prepared earlier, if it still is.
    pub fn prepared(&self, hash: &str, grants: &Grants) -> Option<Arc<Prepared>> {
        let cache = self.prepared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.get(&(hash.to_string(), grants.clone())).cloned()
    }

    /// Drops a component from the in-memory cache (a plugin deleted or
    /// replaced).
    pub fn forget(&self, hash: &str) {
        let mut cache = self.prepared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.retain(|(h, _), _| h != hash);
    }
}

/// Components start with `\0asm` and a layer byte of 1; core modules have
/// 0 there. Checked first for a clearer message than the parser's.
fn check_header(bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(PluginError::Invalid("the file is not WebAssembly (it does not start with \\0asm)".into()));
    }
    if bytes[6..8] == [0, 0] {
        return Err(PluginError::Invalid(
            "the file is a core WebAssembly module, not a component; turn it into one with `wasm-tools component new`"
                .into(),
        ));
    }
    Ok(())
}

enum Pre {
    Rule(rule::RulePre<PluginState>),
    Assigner(assigner::AssignerPre<PluginState>),
    EmailParser(email_parser::EmailParserPre<PluginState>),
    ProcessStep(process_step::ProcessStepPre<PluginState>),
}

/// A compiled, checked and linked plugin.
pub struct Prepared {
    pub hash: String,
    pub inspection: Inspection,
    grants: Grants,
    pre: Pre,
    engine: Engine,
}

/// What a call gets: its configuration, its limits and where its data
/// host functions go.
pub struct Call {
    /// The plugin's configuration, a JSON object.
    pub config: String,
    pub limits: Limits,
    pub io: Box<dyn PluginIo>,
}

/// What a call did, whether it succeeded or not.
#[derive(Debug)]
pub struct Report<T> {
    pub outcome: Result<T, PluginError>,
    pub log: Vec<LogLine>,
    pub fuel_used: u64,
    /// The most linear memory the plugin had, in bytes.
    pub peak_memory: u64,
    pub duration: Duration,
}

impl Prepared {
    pub fn world(&self) -> World {
        self.inspection.world
    }

    /// Runs a `rule` plugin.
    pub fn run_rule(&self, call: Call, event: &RuleEvent) -> Report<Vec<docket_domain::rule::RuleAction>> {
        let input = convert::event_to_wit(event);
        self.run(call, World::Rule, |pre, store| {
            let Pre::Rule(pre) = pre else { unreachable!("checked by run") };
            let plugin = pre.instantiate(&mut *store)?;
            let returned = plugin.docket_plugin_rule_handler().call_handle(&mut *store, &input)?;
            Ok(returned.map_err(returned_error).and_then(convert::actions_from_wit))
        })
    }

    /// Runs an `assigner` plugin.
    pub fn run_assigner(
        &self,
        call: Call,
        request: &AssignmentRequest,
    ) -> Report<Option<docket_domain::assignment::Choice>> {
        let input = convert::assignment_to_wit(request);
        self.run(call, World::Assigner, |pre, store| {
            let Pre::Assigner(pre) = pre else { unreachable!("checked by run") };
            let plugin = pre.instantiate(&mut *store)?;
            let returned = plugin.docket_plugin_assigner_handler().call_choose(&mut *store, &input)?;
            Ok(returned.map_err(returned_error).and_then(|choice| convert::choice_from_wit(request, choice)))
        })
    }

    /// Runs an `email-parser` plugin.
    pub fn run_email_parser(&self, call: Call, email: &ParsedEmail) -> Report<EmailDecision> {
        let input = convert::email_to_wit(email);
        self.run(call, World::EmailParser, |pre, store| {
            let Pre::EmailParser(pre) = pre else { unreachable!("checked by run") };
            let plugin = pre.instantiate(&mut *store)?;
            let returned = plugin.docket_plugin_email_parser_handler().call_parse(&mut *store, &input)?;
            Ok(returned.map_err(returned_error).and_then(convert::decision_from_wit))
        })
    }

    /// Runs a `process-step` plugin.
    pub fn run_process_step(&self, call: Call, step: &StepInput) -> Report<StepOutput> {
        let input = convert::step_to_wit(step);
        self.run(call, World::ProcessStep, |pre, store| {
            let Pre::ProcessStep(pre) = pre else { unreachable!("checked by run") };
            let plugin = pre.instantiate(&mut *store)?;
            let returned = plugin.docket_plugin_process_step_handler().call_run(&mut *store, &input)?;
            Ok(returned.map_err(returned_error).and_then(convert::step_from_wit))
        })
    }

    /// One call in a fresh store. `body` instantiates and calls; its
    /// outer error is a trap, its inner one what the plugin returned.
    fn run<T>(
        &self,
        call: Call,
        world: World,
        body: impl FnOnce(&Pre, &mut Store<PluginState>) -> wasmtime::Result<Result<T, PluginError>>,
    ) -> Report<T> {
        let started = Instant::now();
        let limits = call.limits;
        if self.world() != world {
            return Report {
                outcome: Err(PluginError::Invalid(format!(
                    "the plugin is a `{}` plugin, called as a `{world}` plugin",
                    self.world()
                ))),
                log: Vec::new(),
                fuel_used: 0,
                peak_memory: 0,
                duration: started.elapsed(),
            };
        }
        let state = PluginState::new(self.grants.clone(), call.config, call.io, limits.memory_bytes);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state);
        let outcome = match store.set_fuel(limits.fuel) {
            Ok(()) => {
                let ticks = limits.timeout_ms.div_ceil(EPOCH_TICK.as_millis() as u64).max(1);
                store.set_epoch_deadline(ticks);
                store.epoch_deadline_trap();
                match body(&self.pre, &mut store) {
                    Ok(returned) => returned,
                    Err(trap) => Err(classify(&trap, &limits, store.data().hit_memory_cap)),
                }
            }
            Err(e) => Err(PluginError::Host(format!("{e:#}"))),
        };
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.into_data();
        Report {
            outcome,
            log: state.log,
            fuel_used,
            peak_memory: state.peak_memory as u64,
            duration: started.elapsed(),
        }
    }
}

fn returned_error(error: crate::bindings::v0_1_0::types::PluginError) -> PluginError {
    PluginError::Returned { code: error.code, message: error.message }
}

/// Turns a trap into the error the run log shows.
fn classify(error: &wasmtime::Error, limits: &Limits, hit_memory_cap: bool) -> PluginError {
    if hit_memory_cap {
        return PluginError::MemoryLimit(limits.memory_bytes);
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        match trap {
            Trap::OutOfFuel => return PluginError::OutOfFuel(limits.fuel),
            Trap::Interrupt => return PluginError::Timeout(limits.timeout_ms),
            _ => {}
        }
    }
    if let Some(host) = error.downcast_ref::<HostTrap>() {
        return match host {
            HostTrap::NotGranted { function, capability } => PluginError::NotGranted {
                capability: capability.to_string(),
                import: format!("docket:plugin/host#{function}"),
            },
            HostTrap::Io { .. } => PluginError::Host(host.to_string()),
        };
    }
    // The root cause is the trap's own message ("wasm trap: unreachable"
    // and the like); the backtrace around it is noise in a run log.
    let message = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    PluginError::Trap(message)
}
