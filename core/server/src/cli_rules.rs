//! `docket rules ...`: rules as files, for version control and review.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use docket_domain::rule::{Outcome, RuleInput, RuleRun};
use docket_domain::rule_file;
use docket_store::{Store, StoreError};

use crate::api::rules::unsaved_rule;

/// The `.rhai` files named: files as they are, folders' `*.rhai` files in
/// name order.
fn rule_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    if files.is_empty() {
        bail!(
            "no .rhai rule files found in {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(files)
}

fn read_rule(path: &Path) -> anyhow::Result<RuleInput> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    rule_file::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn store_error(path: &Path, error: StoreError) -> anyhow::Error {
    match error {
        StoreError::Invalid(errors) => anyhow::anyhow!("{}: {}", path.display(), errors.summary()),
        other => anyhow::Error::new(other).context(path.display().to_string()),
    }
}

/// Imports every file, after checking them all: one bad file imports
/// nothing.
pub async fn import(store: &Store, paths: &[PathBuf]) -> anyhow::Result<()> {
    let admin = crate::demo::system_admin(store).await?;
    let files = rule_files(paths)?;
    let mut inputs = Vec::new();
    for path in &files {
        let input = read_rule(path)?;
        store.check_rule(&input).map_err(|e| store_error(path, e))?;
        inputs.push((path, input));
    }
    say!("checked {} rule file(s); importing", inputs.len());
    for (path, input) in inputs {
        let (rule, created) = store.import_rule(&admin, &input).await.map_err(|e| store_error(path, e))?;
        let verb = if created { "created" } else { "replaced" };
        say!("  {verb} {:<40} {} ({})", rule.name, rule.hook.as_str(), path.display());
    }
    Ok(())
}

/// Writes every rule to `dir`, one file each.
pub async fn export(store: &Store, dir: &Path) -> anyhow::Result<()> {
    let admin = crate::demo::system_admin(store).await?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let rules = store.list_rules(&admin).await?;
    for rule in &rules {
        let path = dir.join(rule_file::file_name(rule));
        std::fs::write(&path, rule_file::render(rule)).with_context(|| format!("writing {}", path.display()))?;
        say!("  wrote {}", path.display());
    }
    say!("exported {} rule(s) to {}", rules.len(), dir.display());
    Ok(())
}

/// Dry run of a rule file against a case: prints what it would do.
/// Fails (exit status 1) when the rule fails.
pub async fn test(store: &Store, file: &Path, case: Option<i64>) -> anyhow::Result<()> {
    let admin = crate::demo::system_admin(store).await?;
    let input = read_rule(file)?;
    let rule = unsaved_rule(&input).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let run = store.test_rule(&admin, &rule, case).await.map_err(|e| store_error(file, e))?;
    say!("{}", explain(&run).trim_end_matches('\n'));
    if run.outcome == Outcome::Failed {
        bail!("the rule failed");
    }
    Ok(())
}

/// A run in words: the condition, the actions, the log, the error.
pub fn explain(run: &RuleRun) -> String {
    let mut text = format!("rule:      {} ({})\n", run.rule_name, run.hook);
    text.push_str(&format!(
        "case:      {}\n",
        run.case_number.map(|n| format!("#{n}")).unwrap_or_else(|| "none".into())
    ));
    let condition = match run.condition_held {
        Some(true) => "held",
        Some(false) => "did not hold: the script would not run",
        None if run.error.is_some() => "not evaluated",
        None => "none (always runs)",
    };
    text.push_str(&format!("condition: {condition}\n"));
    if run.actions.is_empty() {
        text.push_str("actions:   none\n");
    } else {
        text.push_str("actions:\n");
        for action in &run.actions {
            text.push_str(&format!("  - {}\n", serde_json::to_string(action).unwrap_or_default()));
        }
    }
    for line in &run.log {
        text.push_str(&format!("log:       {line}\n"));
    }
    if let Some(error) = &run.error {
        text.push_str(&format!("error:     {error}\n"));
    }
    text.push_str(&format!("took:      {} µs (nothing was changed)\n", run.duration_us));
    text
}
