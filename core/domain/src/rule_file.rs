//! Rules as files: a rhai script whose leading `//` comment lines hold the
//! rule's settings, so a file is both a valid script and a complete rule.
//!
//! ```text
//! // name: Escalate urgent portal cases
//! // hook: case.created
//! // condition: ticket.priority == "Urgent"
//! // position: 10
//! // enabled: true
//! // description: Tell the on-call team at once.
//! notify(team_users("On call"), `Urgent case #${ticket.number}`);
//! ```
//!
//! Scheduled rules add `schedule:` (cron) and may add `case_filter:` (JSON
//! on one line) and `run_cap:`.

use crate::rule::{Rule, RuleInput};

const KEYS: [&str; 10] =
    ["name", "hook", "condition", "position", "enabled", "description", "schedule", "case_filter", "run_cap", "plugin"];

/// Reads a rule file; errors name the line.
pub fn parse(text: &str) -> Result<RuleInput, String> {
    // Files written on Windows: the header offsets below count "\n" only.
    let text = &text.replace("\r\n", "\n");
    let mut input = RuleInput { enabled: true, ..RuleInput::default() };
    let mut script_start = 0;
    for (index, line) in text.lines().enumerate() {
        // The header is the leading `// key: value` lines with known keys;
        // any other line (code, a blank, a plain comment) starts the script.
        let Some((key, value)) = line.trim_start().strip_prefix("//").and_then(|c| c.split_once(':')) else { break };
        let (key, value) = (key.trim(), value.trim());
        if !KEYS.contains(&key) {
            break;
        }
        script_start += line.len() + 1;
        let at = |message: String| format!("line {}: {message}", index + 1);
        match key {
            "name" => input.name = value.to_string(),
            "hook" => input.hook = value.to_string(),
            "condition" => input.condition = Some(value.to_string()),
            "description" => input.description = Some(value.to_string()),
            "schedule" => input.schedule = Some(value.to_string()),
            "plugin" => input.plugin = Some(value.to_string()),
            "position" => {
                input.position = value.parse().map_err(|_| at(format!("position `{value}` is not a number")))?
            }
            "run_cap" => {
                input.run_cap = Some(value.parse().map_err(|_| at(format!("run_cap `{value}` is not a number")))?)
            }
            "enabled" => {
                input.enabled = match value {
                    "true" | "yes" => true,
                    "false" | "no" => false,
                    other => return Err(at(format!("enabled must be true or false, not `{other}`"))),
                }
            }
            _ => {
                input.case_filter =
                    Some(serde_json::from_str(value).map_err(|e| at(format!("case_filter is not JSON: {e}")))?)
            }
        }
    }
    input.script = text.get(script_start.min(text.len())..).unwrap_or_default().trim().to_string();
    if input.name.is_empty() {
        return Err(format!("a rule file starts with `// name: ...`; known settings: {}", KEYS.join(", ")));
    }
    if input.hook.is_empty() {
        return Err("the rule file has no `// hook: ...` line".to_string());
    }
    Ok(input)
}

/// Writes a rule as a file [`parse`] reads back.
pub fn render(rule: &Rule) -> String {
    let mut text = format!("// name: {}\n// hook: {}\n", one_line(&rule.name), rule.hook.as_str());
    if let Some(description) = &rule.description {
        text.push_str(&format!("// description: {}\n", one_line(description)));
    }
    if let Some(condition) = &rule.condition {
        text.push_str(&format!("// condition: {}\n", one_line(condition)));
    }
    if let Some(plugin) = &rule.plugin {
        text.push_str(&format!("// plugin: {plugin}\n"));
    }
    if let Some(schedule) = &rule.schedule {
        text.push_str(&format!("// schedule: {schedule}\n"));
    }
    if let Some(filter) = &rule.case_filter {
        text.push_str(&format!("// case_filter: {filter}\n"));
        text.push_str(&format!("// run_cap: {}\n", rule.run_cap));
    }
    text.push_str(&format!("// position: {}\n// enabled: {}\n\n", rule.position, rule.enabled));
    text.push_str(rule.script.trim());
    text.push('\n');
    text
}

/// A file name for a rule: its name in lowercase words joined by dashes.
pub fn file_name(rule: &Rule) -> String {
    let words: Vec<String> =
        rule.name.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    format!("{}.rhai", if words.is_empty() { "rule".to_string() } else { words.join("-") })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Hook;

    #[test]
    fn files_round_trip() {
        let text = "// name: Close stale\n// hook: schedule\n// schedule: 0 6 * * *\n// case_filter: {\"status\": \"Pending\"}\n// run_cap: 200\n// position: 3\n// enabled: false\n\n// Customers had a week.\nset(\"status\", \"Closed\");\n";
        let input = parse(text).expect("parses");
        assert_eq!(input.name, "Close stale");
        assert_eq!(input.hook, "schedule");
        assert_eq!(input.run_cap, Some(200));
        assert!(!input.enabled);
        assert_eq!(input.script, "// Customers had a week.\nset(\"status\", \"Closed\");");
        let rule = input.validate().expect("valid").unsaved("x");
        assert_eq!(rule.hook, Hook::Schedule);
        assert_eq!(parse(&render(&rule)).expect("parses"), input);
        assert_eq!(file_name(&rule), "close-stale.rhai");
    }

    #[test]
    fn bad_files_say_what_is_missing() {
        assert!(parse("set(\"status\", \"Closed\")").expect_err("no name").contains("// name:"));
        assert!(parse("// name: x\nprint(1)").expect_err("no hook").contains("hook"));
        assert!(parse("// name: x\n// hook: manual\n// enabled: maybe\n").expect_err("bad").contains("line 3"));
    }
}
