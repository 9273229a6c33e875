//! A room's word filter: moderator-set phrases (whole words, any case) and
//! regular expressions (the `regex` crate: linear time on any input, with a
//! bound on the compiled size), each holding a post for a moderator's look
//! or refusing it with a reason. Compiled once when the room's settings
//! change, not per post.

use hearth_protocol::limits;
use hearth_protocol::ops::{FilterAction, WordFilter};
use regex::{Regex, RegexBuilder};

use super::Refusal;

/// The most memory one compiled pattern may take: a pattern that would need
/// more is refused when set, never at a post.
const MAX_COMPILED_BYTES: usize = 256 * 1024;

/// The room's filter, compiled.
#[derive(Debug, Clone, Default)]
pub struct CompiledFilters(Vec<(WordFilter, Regex)>);

/// Two filters are the same when their rules are.
impl PartialEq for CompiledFilters {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|((a, _), (b, _))| a == b)
    }
}

impl CompiledFilters {
    /// Compiles a room's stored rules; a rule that no longer compiles (it
    /// did when set) is left out, and logged.
    pub fn of(filters: &[WordFilter]) -> CompiledFilters {
        CompiledFilters(
            filters
                .iter()
                .filter_map(|f| match compile(f) {
                    Ok(re) => Some((f.clone(), re)),
                    Err(error) => {
                        tracing::error!(pattern = %f.pattern, %error, "a stored filter does not compile");
                        None
                    }
                })
                .collect(),
        )
    }

    /// The rule `text` matches, a refusing one first.
    pub fn matching(&self, text: &str) -> Option<&WordFilter> {
        let mut held = None;
        for (filter, re) in &self.0 {
            if re.is_match(text) {
                if filter.action == FilterAction::Refuse {
                    return Some(filter);
                }
                held = held.or(Some(filter));
            }
        }
        held
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn compile(filter: &WordFilter) -> Result<Regex, regex::Error> {
    let pattern =
        if filter.regex { filter.pattern.clone() } else { format!(r"\b{}\b", regex::escape(filter.pattern.trim())) };
    RegexBuilder::new(&pattern).case_insensitive(true).size_limit(MAX_COMPILED_BYTES).nest_limit(32).build()
}

/// Checks the rules a `set_room` gives: how many, how long, and that each
/// compiles within the bound.
pub fn check(filters: &[WordFilter]) -> Result<(), Refusal> {
    if filters.len() > limits::MAX_FILTERS {
        return Err(Refusal::OutOfRange { field: "filters", least: 0, most: limits::MAX_FILTERS as u64 });
    }
    for filter in filters {
        let len = filter.pattern.trim().len();
        if len == 0 || len > limits::MAX_FILTER_PATTERN_BYTES {
            return Err(Refusal::BadFilter {
                pattern: filter.pattern.chars().take(40).collect(),
                why: format!("a pattern is 1 to {} bytes", limits::MAX_FILTER_PATTERN_BYTES),
            });
        }
        if let Err(error) = compile(filter) {
            let why = match error {
                regex::Error::CompiledTooBig(_) => "it would take too much memory; make it simpler".to_string(),
                other => other.to_string().lines().last().unwrap_or("it does not read as a pattern").to_string(),
            };
            return Err(Refusal::BadFilter { pattern: filter.pattern.chars().take(40).collect(), why });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, regex: bool, action: FilterAction) -> WordFilter {
        WordFilter { pattern: pattern.into(), regex, action, reason: Default::default() }
    }

    #[test]
    fn phrases_match_whole_words_in_any_case_and_a_refusal_wins() {
        let filters = CompiledFilters::of(&[
            rule("cheap lenses", false, FilterAction::Hold),
            rule(r"spam\.example", true, FilterAction::Refuse),
        ]);
        assert_eq!(filters.matching("CHEAP Lenses here").map(|f| f.action), Some(FilterAction::Hold));
        assert!(filters.matching("cheap lensesX").is_none(), "whole words only");
        let both = filters.matching("cheap lenses at spam.example");
        assert_eq!(both.map(|f| f.action), Some(FilterAction::Refuse));
        assert!(filters.matching("a calm message").is_none());
    }

    #[test]
    fn patterns_too_big_or_not_patterns_are_refused_when_set() {
        assert!(check(&[rule("(unclosed", true, FilterAction::Hold)]).is_err());
        assert!(check(&[rule(r"\w{1000}{1000}", true, FilterAction::Hold)]).is_err());
        assert!(check(&[rule("", false, FilterAction::Hold)]).is_err());
        assert!(check(&vec![rule("ok", false, FilterAction::Hold); 51]).is_err());
        assert!(
            check(&[rule("(a+)+$", true, FilterAction::Refuse)]).is_ok(),
            "linear time: no catastrophic backtracking"
        );
        let evil = CompiledFilters::of(&[rule("(a+)+$", true, FilterAction::Refuse)]);
        assert!(evil.matching(&format!("{}!", "a".repeat(5000))).is_none());
    }
}
