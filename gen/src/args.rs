//! Command-line flags of `segflow gen`.

use std::path::PathBuf;

use crate::{GenConfig, DEFAULT_END_MS, MAX_DAYS, MAX_USERS};

/// One-paragraph help for `segflow gen`.
pub const USAGE: &str = "\
usage: segflow gen [--model FILE.eql...] [--users N] [--events M] [--seed S] [--days D] [--out FILE]

Writes synthetic data as NDJSON records: for examples/retail/retail.eql, or
with --model for any model.
  --model F    write data for the model in F (repeat for a model in several
               files): its entities, then its events; strings the model
               compares a field with are that field's most common values
  --users N    number of users (default 10000; stores and products scale with
               it); with --model, instances of the entity the events reference
               most, and N/100 (at least 10) of every other
  --events M   number of distinct events (default 100000)
  --seed S     random seed; the same flags give byte-identical output (default 42)
  --days D     days of events, ending 2026-11-20T00:00:00Z (default 90)
  --out FILE   write to FILE instead of standard output
Numbers may use '_' separators (1_000_000). Flags also accept --flag=value.";

const FLAGS: [&str; 6] = ["--users", "--events", "--seed", "--days", "--out", "--model"];

/// The most `--days`: the events (and an event's timestamps, up to 33 days
/// before its time) then start after 1970, before which `segflow` refuses
/// an event. (`generate` itself takes up to `MAX_DAYS`, for data read by
/// other tools.)
const MAX_CLI_DAYS: u32 = 20_000;
const _: () = assert!(MAX_CLI_DAYS <= MAX_DAYS && (MAX_CLI_DAYS as i64 + 33) * 86_400_000 < DEFAULT_END_MS);

/// What `segflow gen`'s flags ask for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GenArgs {
    pub config: GenConfig,
    /// Where to write (`None`: standard output).
    pub out: Option<PathBuf>,
    /// The files of the model to write data for (none: the retail example's data).
    pub models: Vec<PathBuf>,
}

/// Parses the arguments that follow `segflow gen` (not the program name).
///
/// Errors are one line, lowercase, naming the flag and what it expected.
///
/// ```
/// let args: Vec<String> = ["--users", "500", "--events=2_000", "--out", "data.ndjson"]
///     .iter().map(|s| s.to_string()).collect();
/// let parsed = segflow_gen::parse_args(&args).unwrap();
/// assert_eq!((parsed.config.users, parsed.config.events, parsed.config.seed), (500, 2_000, 42));
/// assert_eq!(parsed.out, Some("data.ndjson".into()));
/// ```
pub fn parse_args(args: &[String]) -> Result<GenArgs, String> {
    let mut parsed = GenArgs::default();
    let config = &mut parsed.config;
    let mut seen = [false; FLAGS.len()];
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg.as_str(), None),
        };
        let Some(index) = FLAGS.iter().position(|&f| f == flag) else {
            return Err(unknown_argument(arg, flag));
        };
        if std::mem::replace(&mut seen[index], true) && flag != "--model" {
            return Err(format!("{flag} given twice"));
        }
        let value = match inline_value {
            Some(value) => value,
            None => match rest.next() {
                Some(value) if !value.starts_with("--") => value.as_str(),
                _ => return Err(format!("missing value for {flag}")),
            },
        };
        match flag {
            "--users" => {
                config.users = number(flag, value, 2, MAX_USERS, "a number of users")?;
            }
            "--events" => {
                config.events = number(flag, value, 0, u64::MAX, "a number of events")?;
            }
            "--seed" => config.seed = number(flag, value, 0, u64::MAX, "an integer seed")?,
            "--days" => {
                config.days = number(flag, value, 1, u64::from(MAX_CLI_DAYS), "a number of days")? as u32;
            }
            _ => {
                if value.is_empty() {
                    return Err(format!("missing value for {flag}"));
                }
                match flag {
                    "--out" => parsed.out = Some(PathBuf::from(value)),
                    _ => parsed.models.push(PathBuf::from(value)),
                }
            }
        }
    }
    Ok(parsed)
}

/// Parses a non-negative integer (with optional `_` separators) in `min..=max`.
fn number(flag: &str, value: &str, min: u64, max: u64, what: &str) -> Result<u64, String> {
    let digits: String = value.chars().filter(|&c| c != '_').collect();
    let valid = !digits.is_empty() && !value.starts_with('_') && digits.bytes().all(|b| b.is_ascii_digit());
    let parsed = if valid { digits.parse::<u64>().ok() } else { None };
    match parsed {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(_) => Err(format!("invalid value '{value}' for {flag}: expected {what} from {min} to {max}")),
        None if valid => Err(format!("invalid value '{value}' for {flag}: too large (at most {max})")),
        None => Err(format!("invalid value '{value}' for {flag}: expected {what} (a whole number, like 10000)")),
    }
}

fn unknown_argument(arg: &str, flag: &str) -> String {
    if !flag.starts_with('-') {
        return format!("unexpected argument '{arg}': gen takes only flags ({})", FLAGS.join(", "));
    }
    let nearest = FLAGS.iter().map(|&f| (edit_distance(flag, f), f)).min().filter(|&(distance, _)| distance <= 2);
    match nearest {
        Some((_, f)) => format!("unknown flag '{flag}' (did you mean {f}?)"),
        None => format!("unknown flag '{flag}' (expected one of {})", FLAGS.join(", ")),
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(GenConfig, Option<PathBuf>), String> {
        parse_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map(|parsed| (parsed.config, parsed.out))
    }

    #[test]
    fn defaults_and_all_flags() {
        assert_eq!(parse(&[]).unwrap(), (GenConfig::default(), None));
        let (config, out) = parse(&[
            "--users",
            "1_000_000",
            "--events",
            "10000000",
            "--seed",
            "7",
            "--days",
            "30",
            "--out",
            "x.ndjson",
        ])
        .unwrap();
        assert_eq!(
            config,
            GenConfig { users: 1_000_000, events: 10_000_000, seed: 7, days: 30, ..GenConfig::default() }
        );
        assert_eq!(out, Some(PathBuf::from("x.ndjson")));
        assert_eq!(parse(&["--days=7"]).unwrap().0.days, 7);
        assert_eq!(parse(&["--events", "0"]).unwrap().0.events, 0);
        assert_eq!(parse(&["--days", "20000"]).unwrap().0.days, 20_000);
        assert_eq!(
            parse(&["--days", "20001"]).unwrap_err(),
            "invalid value '20001' for --days: expected a number of days from 1 to 20000"
        );
    }

    #[test]
    fn a_model_in_several_files() {
        let args: Vec<String> = ["--model", "a.eql", "--users=50", "--model=b.eql"].map(String::from).to_vec();
        let parsed = parse_args(&args).unwrap();
        assert_eq!(parsed.models, [PathBuf::from("a.eql"), PathBuf::from("b.eql")]);
        assert_eq!(parsed.config.users, 50);
        assert_eq!(parse(&["--model"]).unwrap_err(), "missing value for --model");
    }

    #[test]
    fn clear_errors() {
        let err = |args: &[&str]| parse(args).unwrap_err();
        assert_eq!(err(&["--users"]), "missing value for --users");
        assert_eq!(err(&["--users", "--events", "5"]), "missing value for --users");
        assert_eq!(err(&["--out="]), "missing value for --out");
        assert_eq!(
            err(&["--users", "ten"]),
            "invalid value 'ten' for --users: expected a number of users (a whole number, like 10000)"
        );
        assert_eq!(
            err(&["--users", "1"]),
            "invalid value '1' for --users: expected a number of users from 2 to 1000000000"
        );
        assert_eq!(
            err(&["--days", "-3"]),
            "invalid value '-3' for --days: expected a number of days (a whole number, like 10000)"
        );
        assert_eq!(
            err(&["--seed", "99999999999999999999"]),
            "invalid value '99999999999999999999' for --seed: too large (at most 18446744073709551615)"
        );
        assert_eq!(err(&["--user", "5"]), "unknown flag '--user' (did you mean --users?)");
        assert_eq!(
            err(&["--verbose"]),
            "unknown flag '--verbose' (expected one of --users, --events, --seed, --days, --out, --model)"
        );
        assert_eq!(
            err(&["data.ndjson"]),
            "unexpected argument 'data.ndjson': gen takes only flags (--users, --events, --seed, --days, --out, --model)"
        );
        assert_eq!(err(&["--seed", "1", "--seed", "2"]), "--seed given twice");
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("--user", "--users"), 1);
        assert_eq!(edit_distance("--evnets", "--events"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
