//! Usernames and group names: what makes a name valid, how a policy's glob pattern matches one,
//! and how a name from the network is shown in a message.

use super::Refusal;
use crate::protocol::wire::ErrorCode;

/// Longest username or group name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// Why a name is not a valid username or group name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("it contains whitespace")]
    Whitespace,
    #[error("it contains a control character")]
    Control,
}

/// Checks a username or group name: 1 to [`MAX_NAME_CHARS`] characters, none of them
/// whitespace or a control character.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().nth(MAX_NAME_CHARS).is_some() {
        return Err(NameError::TooLong);
    }
    if name.chars().any(char::is_whitespace) {
        return Err(NameError::Whitespace);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    Ok(())
}

/// Matches `text` against a glob `pattern` where `*` is any run of characters (also none) and
/// `?` is exactly one character; every other character matches itself.
///
/// Linear in practice: on a mismatch it only backtracks to the last `*`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` seen, and the text position it currently absorbs up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` absorb one more character and retry from there.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A name for a message: quoted, escaped, and cut short (names from the network can be long).
pub(super) fn quoted(name: &str) -> String {
    const SHOWN: usize = MAX_NAME_CHARS + 8;
    if name.chars().nth(SHOWN).is_some() {
        let head: String = name.chars().take(SHOWN).collect();
        format!("{head:?}...")
    } else {
        format!("{name:?}")
    }
}

/// Checks a group name from a request; the refusal names it.
pub(super) fn check_group_name(name: &str) -> Result<(), Refusal> {
    validate_name(name).map_err(|reason| {
        Refusal::new(
            ErrorCode::InvalidName,
            format!("{} is not a valid group name: {reason}", quoted(name)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_name("alice"), Ok(()));
        assert_eq!(validate_name("é-ü_42"), Ok(()));
        assert_eq!(validate_name(&"x".repeat(32)), Ok(()));
        assert_eq!(validate_name(&"é".repeat(32)), Ok(()));
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name(&"x".repeat(33)), Err(NameError::TooLong));
        assert_eq!(validate_name("a b"), Err(NameError::Whitespace));
        assert_eq!(validate_name("a\u{a0}b"), Err(NameError::Whitespace));
        assert_eq!(validate_name("a\u{7}b"), Err(NameError::Control));
    }

    #[test]
    fn glob_matches_star_and_question_mark() {
        assert!(glob_match("team-*", "team-a"));
        assert!(glob_match("team-*", "team-"));
        assert!(!glob_match("team-*", "team"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*b*c", "aXbYbZc"));
        assert!(!glob_match("*b*c", "aXbYbZ"));
        assert!(glob_match("é?", "éü"));
        assert!(glob_match("a**b", "ab"));
        assert!(!glob_match("abc", "abcd"));
        assert!(glob_match(&"*a".repeat(10), &"a".repeat(40)));
        assert!(!glob_match(
            &"*a".repeat(10),
            &"ab".repeat(40).replace('a', "b")
        ));
    }
}
