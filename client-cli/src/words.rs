//! What a person types, read the same way wherever they type it: script mode's
//! flags (`hearth mute bo --for 10m`) and the UI's slash commands
//! (`/mute bo 10m`). One grammar for a length of time, so a moderator who
//! learned it in one place is understood in the other.

use std::time::Duration;

/// A length of time as a person writes it: `90s`, `10m`, `1h 30m`, `2d` —
/// or, where the command has a customary unit (`bare`), a plain number of it
/// (the UI's `/mute bo 10` is ten minutes). Without one, a plain number is
/// refused with what to write instead.
pub fn duration(word: &str, bare: Option<Duration>) -> Result<Duration, String> {
    if let Ok(count) = word.parse::<u32>() {
        return match bare {
            Some(unit) => Ok(unit * count),
            None => Err(format!("{word:?} has no unit; write e.g. {word}s, {word}m or {word}h")),
        };
    }
    humantime::parse_duration(word)
        .map_err(|e| format!("{word:?} is not a length of time ({e}); write e.g. 90s, 10m, 1h 30m"))
}

/// A length of time said back to a person: `10m`, `1h 30m`.
pub fn say(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

/// [`duration`] without a customary unit, for clap's `value_parser`.
pub fn duration_flag(word: &str) -> Result<Duration, String> {
    duration(word, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_or_the_commands_own() {
        let minute = Some(Duration::from_secs(60));
        assert_eq!(duration("10", minute), Ok(Duration::from_secs(600)));
        assert_eq!(duration("10m", minute), Ok(Duration::from_secs(600)));
        assert_eq!(duration("1h 30m", None), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("90s", None), Ok(Duration::from_secs(90)));
        assert!(duration("10", None).unwrap_err().contains("10m"));
        assert!(duration("soon", minute).unwrap_err().contains("not a length of time"));
        assert_eq!(say(Duration::from_secs(5400)), "1h 30m");
    }
}
