//! The rhai engine every rule runs in, and its limits.
//!
//! Limits are set explicitly (never left to rhai's defaults, which differ
//! between debug and release builds), so a script behaves the same in
//! tests and in production.

use std::time::Duration;

use rhai::module_resolvers::DummyModuleResolver;

/// The budgets of one rule run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// rhai operations (roughly: expressions evaluated) per run.
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Nesting of expressions (and of expressions inside functions).
    pub max_expr_depth: usize,
    pub max_function_expr_depth: usize,
    /// Characters in one string.
    pub max_string_size: usize,
    /// Items in one array, entries in one map.
    pub max_array_size: usize,
    pub max_map_size: usize,
    /// Wall-clock time per run, database reads included.
    pub time_budget: Duration,
    /// Actions one run may emit.
    pub max_actions: usize,
    /// Log lines one run may keep (later ones are counted, not kept).
    pub max_log_lines: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 500_000,
            max_call_levels: 24,
            max_expr_depth: 64,
            max_function_expr_depth: 32,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 1_000,
            time_budget: Duration::from_millis(250),
            max_actions: 100,
            max_log_lines: 100,
        }
    }
}

/// A rhai engine with the limits applied, `eval` and modules disabled, and
/// strict variables (an unknown variable is a compile error, shown when
/// the rule is saved). The script API is registered by the caller.
pub(crate) fn new_engine(limits: &Limits) -> rhai::Engine {
    let mut engine = rhai::Engine::new();
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_function_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_modules(0)
        .set_max_variables(1_000)
        .set_max_functions(200)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(false)
        .set_module_resolver(DummyModuleResolver::new());
    // `eval` would compile code the admin never saved; `import` would load
    // modules. Neither is part of the rule language.
    engine.disable_symbol("eval");
    engine.disable_symbol("import");
    engine.disable_symbol("export");
    engine
}
