//! Assignment strategies (domain.md, "Assignment rules"): which member of
//! a team gets the next case, and why.
//!
//! The store gathers the candidates and their numbers inside the
//! transaction that assigns; the choice itself is pure.

use serde::{Deserialize, Serialize};

/// An active member of the target team, in user-id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub user_id: String,
    pub username: String,
    /// Open (actual-status) cases assigned to the user.
    pub open_cases: i64,
}

/// What a strategy sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentInput {
    pub team_id: String,
    pub team_name: String,
    pub position: Option<String>,
    pub candidates: Vec<Candidate>,
    /// The assignee of the highest-numbered case assigned to any
    /// candidate, and that case's number.
    pub last_assigned: Option<(String, i64)>,
}

/// The chosen user and the reason written on the `Assign` note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub user_id: String,
    pub reason: String,
}

/// A way to choose an assignee. The built-in ones are below; plugins add
/// their own under their names.
pub trait Strategy: Send + Sync {
    fn name(&self) -> &str;
    /// Whether `choose` looks at `open_cases` (counting them costs a query
    /// per candidate, so strategies that do not need them say so).
    fn needs_open_cases(&self) -> bool {
        true
    }
    /// `None` when there is nobody to choose.
    fn choose(&self, input: &AssignmentInput) -> Result<Option<Choice>, String>;
}

fn team_label(input: &AssignmentInput) -> String {
    match &input.position {
        Some(position) => format!("team {} (position {position})", input.team_name),
        None => format!("team {}", input.team_name),
    }
}

/// The candidate after the one who got the team's latest case, wrapping;
/// the first when none did.
pub struct RoundRobin;

impl Strategy for RoundRobin {
    fn name(&self) -> &str {
        "round-robin"
    }

    fn needs_open_cases(&self) -> bool {
        false
    }

    fn choose(&self, input: &AssignmentInput) -> Result<Option<Choice>, String> {
        let candidates = &input.candidates;
        if candidates.is_empty() {
            return Ok(None);
        }
        let (index, reason) = match &input.last_assigned {
            Some((last, number)) => match candidates.iter().position(|c| &c.user_id == last) {
                Some(i) => {
                    let next = (i + 1) % candidates.len();
                    (next, format!("next after {} (case #{number}) in {}", candidates[i].username, team_label(input)))
                }
                None => (0, format!("first member of {}", team_label(input))),
            },
            None => (0, format!("first member of {}: no case assigned to it yet", team_label(input))),
        };
        Ok(Some(Choice { user_id: candidates[index].user_id.clone(), reason: format!("round-robin: {reason}") }))
    }
}

/// The candidate with the fewest open cases; ties go to the first.
pub struct LeastBusy;

impl Strategy for LeastBusy {
    fn name(&self) -> &str {
        "least-busy"
    }

    fn choose(&self, input: &AssignmentInput) -> Result<Option<Choice>, String> {
        let Some(best) = input.candidates.iter().min_by_key(|c| c.open_cases) else { return Ok(None) };
        let counts: Vec<String> = input.candidates.iter().map(|c| format!("{} {}", c.username, c.open_cases)).collect();
        Ok(Some(Choice {
            user_id: best.user_id.clone(),
            reason: format!("least-busy: fewest open cases in {} ({})", team_label(input), counts.join(", ")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(last: Option<(&str, i64)>, open: [i64; 3]) -> AssignmentInput {
        AssignmentInput {
            team_id: "t".into(),
            team_name: "Support".into(),
            position: None,
            candidates: ["a", "b", "c"]
                .iter()
                .zip(open)
                .map(|(id, open_cases)| Candidate { user_id: id.to_string(), username: id.to_string(), open_cases })
                .collect(),
            last_assigned: last.map(|(u, n)| (u.to_string(), n)),
        }
    }

    #[test]
    fn round_robin_wraps_after_the_last_assignee() {
        let pick = |last| RoundRobin.choose(&input(last, [0; 3])).expect("chooses").expect("someone").user_id;
        assert_eq!(pick(None), "a");
        assert_eq!(pick(Some(("a", 7))), "b");
        assert_eq!(pick(Some(("c", 9))), "a");
        assert_eq!(pick(Some(("gone", 9))), "a");
        let reason = RoundRobin.choose(&input(Some(("a", 7)), [0; 3])).expect("ok").expect("some").reason;
        assert!(reason.contains("next after a (case #7)"), "{reason}");
    }

    #[test]
    fn least_busy_prefers_the_first_of_the_idlest() {
        let choice = LeastBusy.choose(&input(None, [3, 1, 1])).expect("chooses").expect("someone");
        assert_eq!(choice.user_id, "b");
        assert!(choice.reason.contains("a 3, b 1, c 1"), "{}", choice.reason);
    }

    #[test]
    fn nobody_to_choose_from_is_not_an_error() {
        let mut empty = input(None, [0; 3]);
        empty.candidates.clear();
        assert_eq!(RoundRobin.choose(&empty), Ok(None));
        assert_eq!(LeastBusy.choose(&empty), Ok(None));
    }
}
