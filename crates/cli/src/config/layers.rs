//! The TOML file as the lowest layer under flags and environment variables.
//!
//! clap already ranks a flag above its environment variable and both above the argument's
//! default; the file's values are put in as the defaults of the arguments they name, so the
//! command line is parsed once more with them and every setting keeps the one declaration that
//! gives its flag, variable and key. A file key that names no setting is an error (a typo would
//! otherwise be a silently ignored setting), and every value in the file is checked the way the
//! flag would be, whichever command runs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use anyhow::Context;
use clap::{Arg, Args, Command, CommandFactory, FromArgMatches};

use super::{ServeArgs, StoreArgs};

/// Settings that have a flag and a variable but no key in the file: the file's own path, and
/// the master key, which belongs in a file of its own (`master_key_file`) and never beside the
/// database settings.
const NOT_IN_FILE: &[&str] = &["config", "master_key"];

/// Every setting, as clap declares it: the groups of `serve` (which uses all of them) and the
/// global store options.
pub fn settings() -> Vec<Arg> {
    let cmd = ServeArgs::augment_args(StoreArgs::augment_args(Command::new("settings")));
    cmd.get_arguments()
        .filter(|a| a.get_long().is_some())
        .cloned()
        .collect()
}

/// The TOML key of a setting, if the file may set it.
pub fn file_key(arg: &Arg) -> Option<&str> {
    let id = arg.get_id().as_str();
    (!NOT_IN_FILE.contains(&id)).then_some(id)
}

/// The environment variable a setting's name gives.
pub fn env_name(id: &str) -> String {
    format!("KEYTURN_{}", id.to_uppercase())
}

/// Parses `args` into `P`, the TOML file named by `--config`/`KEYTURN_CONFIG` (if any) under
/// flags and environment. A `clap::Error` in the chain is the command line's own (including
/// `--help`), to be shown with `clap::Error::exit`.
pub fn parse_from<P, I, T>(args: I) -> anyhow::Result<P>
where
    P: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    parse_with(P::command(), args)
}

pub(super) fn parse_with<P, I, T>(cmd: Command, args: I) -> anyhow::Result<P>
where
    P: FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let first = cmd.clone().try_get_matches_from(&args)?;
    let matches = match first
        .try_get_one::<std::path::PathBuf>("config")
        .ok()
        .flatten()
    {
        None => first,
        Some(path) => {
            let file = read(path)?;
            with_file(cmd, &file).try_get_matches_from(&args)?
        }
    };
    Ok(P::from_arg_matches(&matches)?)
}

/// The file's settings as the text a flag would carry, checked as flags.
fn read(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    let bad = || format!("bad configuration file {}", path.display());
    let table: toml::Table = toml::from_str(&text).with_context(bad)?;
    let known = settings();
    let mut values = BTreeMap::new();
    for (key, value) in table {
        let Some(arg) = known.iter().find(|a| file_key(a) == Some(key.as_str())) else {
            anyhow::bail!("{}: unknown setting `{key}`", bad());
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => anyhow::bail!("{}: `{key}` takes a single value", bad()),
        };
        values.insert(arg.get_id().to_string(), text);
    }
    // Parsed as flags of a command that has nothing but the settings (and reads no variables),
    // so a bad value is reported as what it is, with the flag's own rules.
    let mut check = Command::new("file").no_binary_name(true);
    let mut argv = Vec::new();
    for arg in known {
        if let Some(value) = values.get(arg.get_id().as_str()) {
            argv.push(format!("--{}={value}", arg.get_long().unwrap_or_default()));
        }
        check = check.arg(arg.env(None).global(false));
    }
    check
        .try_get_matches_from(argv)
        .map_err(|e| anyhow::anyhow!("{}: {}", bad(), first_line(&e)))?;
    Ok(values)
}

fn first_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.trim_start_matches("error: ").to_owned()
}

/// `cmd` with the file's values as the defaults of the settings they name, in every subcommand.
fn with_file(cmd: Command, file: &BTreeMap<String, String>) -> Command {
    cmd.mut_args(|arg| {
        let id = arg.get_id().as_str();
        match file.get(id) {
            Some(value) if is_setting(&arg) => {
                let secret = arg.is_hide_env_values_set();
                arg.default_value(value.clone()).hide_default_value(secret)
            }
            _ => arg,
        }
    })
    .mut_subcommands(|sub| with_file(sub, file))
}

/// A command's own argument that happens to share a setting's name is not that setting.
fn is_setting(arg: &Arg) -> bool {
    let id = arg.get_id().as_str();
    file_key(arg).is_some()
        && arg.get_long() == Some(id.replace('_', "-").as_str())
        && arg
            .get_env()
            .is_none_or(|env| env.to_str() == Some(env_name(id).as_str()))
}

/// clap's parser for secrets: the text goes straight into a `SecretString`.
pub fn secret(text: &str) -> Result<secrecy::SecretString, std::convert::Infallible> {
    Ok(text.into())
}
