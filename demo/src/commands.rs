//! What a typed line means: a `!` command or a message for the current group.
//!
//! Parsing is pure: [`parse`] turns one line into a [`Command`] or a [`ParseError`] whose
//! `Display` is the one-line answer the chat prints. A line starting with `!!` is a message that
//! starts with `!`.

use std::fmt;

use messenger_core::Order;

/// One line of input, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A blank line: nothing to do.
    Nothing,
    /// Text for the current group.
    Say(String),
    /// `!g`: every group on the tracker.
    Groups,
    /// `!lm <group>`: a group's members and their addresses.
    Members(String),
    /// `!j <group> [fifo|total] [--password [P]]`.
    Join(Join),
    /// `!w <group>`: the group plain lines go to.
    Write(String),
    /// `!e <group>`: leave.
    Leave(String),
    /// `!q`: report the metrics and quit.
    Quit,
    /// `!help`.
    Help,
    /// `!stats`: this client's metrics so far.
    Stats,
}

/// The arguments of `!j`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    pub group: String,
    /// `None`: the chat's default (`--order`) when the group is new.
    pub order: Option<Order>,
    pub password: Password,
}

/// How `!j` gets a group's password.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    None,
    Given(String),
    /// `--password` without a value: ask for it at a prompt.
    Ask,
}

impl fmt::Debug for Password {
    /// Never prints the password itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::None => f.write_str("None"),
            Password::Given(_) => f.write_str("Given(..)"),
            Password::Ask => f.write_str("Ask"),
        }
    }
}

/// Why a line is not a command; `Display` is the answer to print, on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Unknown(String),
    /// A known command with missing, extra or wrong arguments.
    Usage {
        problem: String,
        usage: &'static str,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown(word) => {
                write!(f, "unknown command {word}: type !help for the commands")
            }
            ParseError::Usage { problem, usage } => write!(f, "{problem}: usage: {usage}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The commands, one line each, as `!help` prints them.
pub const HELP: &[(&str, &str)] = &[
    ("!g", "list the groups on the tracker"),
    ("!lm <group>", "list a group's members and their addresses"),
    (
        "!j <group> [fifo|total] [--password [P]]",
        "join (or create) a group; --password alone asks for it",
    ),
    ("!w <group>", "choose the group your plain lines go to"),
    ("!e <group>", "leave a group"),
    ("!stats", "your metrics so far"),
    (
        "!q",
        "quit: print your metrics and report them to the tracker",
    ),
    ("!help", "this list"),
    (
        "<text>",
        "send text to the chosen group (!!text sends \"!text\")",
    ),
];

/// The command words, for completion.
pub const WORDS: &[&str] = &["!g", "!lm", "!j", "!w", "!e", "!stats", "!q", "!help"];

const USAGE_G: &str = "!g";
const USAGE_LM: &str = "!lm <group>";
const USAGE_J: &str = "!j <group> [fifo|total] [--password [P]]";
const USAGE_W: &str = "!w <group>";
const USAGE_E: &str = "!e <group>";

fn usage(problem: impl Into<String>, usage: &'static str) -> ParseError {
    ParseError::Usage {
        problem: problem.into(),
        usage,
    }
}

/// Understands one line of input.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Command::Nothing);
    }
    if let Some(rest) = line.strip_prefix("!!") {
        return Ok(Command::Say(format!("!{rest}")));
    }
    if !line.starts_with('!') {
        return Ok(Command::Say(line.to_string()));
    }
    let mut words = line.split_whitespace();
    let word = words.next().unwrap_or("!");
    let args: Vec<&str> = words.collect();
    match word {
        "!g" | "!groups" => no_args(&args, USAGE_G).map(|()| Command::Groups),
        "!lm" => one_group(&args, USAGE_LM).map(Command::Members),
        "!w" => one_group(&args, USAGE_W).map(Command::Write),
        "!e" => one_group(&args, USAGE_E).map(Command::Leave),
        "!j" => parse_join(&args).map(Command::Join),
        "!q" | "!quit" => no_args(&args, "!q").map(|()| Command::Quit),
        "!help" | "!h" | "!?" => Ok(Command::Help),
        "!stats" => no_args(&args, "!stats").map(|()| Command::Stats),
        other => Err(ParseError::Unknown(other.to_string())),
    }
}

fn no_args(args: &[&str], form: &'static str) -> Result<(), ParseError> {
    match args {
        [] => Ok(()),
        _ => Err(usage(format!("{form} takes no arguments"), form)),
    }
}

fn one_group(args: &[&str], form: &'static str) -> Result<String, ParseError> {
    match args {
        [group] => Ok(group.to_string()),
        [] => Err(usage("which group?", form)),
        _ => Err(usage("one group only", form)),
    }
}

fn parse_join(args: &[&str]) -> Result<Join, ParseError> {
    let mut group = None;
    let mut order = None;
    let mut password = Password::None;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i];
        i += 1;
        match arg {
            "--password" | "-p" => {
                if password != Password::None {
                    return Err(usage("--password given twice", USAGE_J));
                }
                // The value is the next word unless there is none or it is another option.
                password = match args.get(i) {
                    Some(p) if !p.starts_with("--") => {
                        i += 1;
                        Password::Given(p.to_string())
                    }
                    _ => Password::Ask,
                };
            }
            _ if group.is_some() && arg.parse::<Order>().is_ok() => {
                if order.is_some() {
                    return Err(usage("the order is given twice", USAGE_J));
                }
                order = arg.parse().ok();
            }
            _ if arg.starts_with("--") => {
                return Err(usage(format!("unknown option {arg}"), USAGE_J));
            }
            _ if group.is_none() => group = Some(arg.to_string()),
            _ => return Err(usage(format!("unexpected {arg:?}"), USAGE_J)),
        }
    }
    let Some(group) = group else {
        return Err(usage("which group?", USAGE_J));
    };
    Ok(Join {
        group,
        order,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(group: &str, order: Option<Order>, password: Password) -> Command {
        Command::Join(Join {
            group: group.into(),
            order,
            password,
        })
    }

    #[test]
    fn plain_lines_are_messages() {
        assert_eq!(parse("hello there"), Ok(Command::Say("hello there".into())));
        assert_eq!(parse("  padded  \r"), Ok(Command::Say("padded".into())));
        assert_eq!(parse("!!bang"), Ok(Command::Say("!bang".into())));
        assert_eq!(parse(""), Ok(Command::Nothing));
        assert_eq!(parse("   "), Ok(Command::Nothing));
    }

    #[test]
    fn every_command() {
        assert_eq!(parse("!g"), Ok(Command::Groups));
        assert_eq!(parse("!lm lobby"), Ok(Command::Members("lobby".into())));
        assert_eq!(parse("!w lobby"), Ok(Command::Write("lobby".into())));
        assert_eq!(parse("!e lobby"), Ok(Command::Leave("lobby".into())));
        assert_eq!(parse("!q"), Ok(Command::Quit));
        assert_eq!(parse("!help"), Ok(Command::Help));
        assert_eq!(parse("!stats"), Ok(Command::Stats));
        assert_eq!(parse("  !g  "), Ok(Command::Groups));
    }

    #[test]
    fn join_forms() {
        assert_eq!(parse("!j lobby"), Ok(join("lobby", None, Password::None)));
        assert_eq!(
            parse("!j lobby total"),
            Ok(join("lobby", Some(Order::Total), Password::None))
        );
        assert_eq!(
            parse("!j lobby fifo"),
            Ok(join("lobby", Some(Order::Fifo), Password::None))
        );
        assert_eq!(
            parse("!j ops --password s3cret"),
            Ok(join("ops", None, Password::Given("s3cret".into())))
        );
        assert_eq!(
            parse("!j ops total --password s3cret"),
            Ok(join(
                "ops",
                Some(Order::Total),
                Password::Given("s3cret".into())
            ))
        );
        assert_eq!(
            parse("!j ops --password s3cret total"),
            Ok(join(
                "ops",
                Some(Order::Total),
                Password::Given("s3cret".into())
            ))
        );
        assert_eq!(
            parse("!j ops --password"),
            Ok(join("ops", None, Password::Ask))
        );
        // A group may be called "total": the first word is always the group.
        assert_eq!(parse("!j total"), Ok(join("total", None, Password::None)));
    }

    #[test]
    fn mistakes_get_one_line_answers() {
        let cases = [
            ("!x", "unknown command !x"),
            ("!lm", "which group?: usage: !lm <group>"),
            ("!w a b", "one group only: usage: !w <group>"),
            ("!e", "which group?: usage: !e <group>"),
            ("!j", "which group?: usage: !j <group>"),
            ("!j a b", "unexpected \"b\": usage: !j"),
            ("!j a total fifo", "the order is given twice"),
            ("!j a --pw x", "unknown option --pw"),
            ("!j a --password x --password y", "--password given twice"),
            ("!g now", "!g takes no arguments"),
            ("!q later", "!q takes no arguments"),
        ];
        for (line, expected) in cases {
            let err = parse(line).expect_err(line).to_string();
            assert!(err.starts_with(expected), "{line:?} -> {err:?}");
            assert!(!err.contains('\n'), "{line:?} -> {err:?}");
        }
    }

    #[test]
    fn passwords_are_not_printed_by_debug() {
        let c = parse("!j ops --password s3cret").expect("parses");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
