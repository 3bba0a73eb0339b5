//! `fidius`: inspect, check, call and sign fidius plugin libraries, without their
//! interface crates.
//!
//! Install it with `cargo install --path fidius-cli` from a clone of the repository
//! (or `cargo install fidius-cli` once it is published); `fidius --help` lists the
//! commands. Exit status: 0 on success; 1 when a call fails or a library is refused
//! (by `check` or `verify`); 2 for usage errors and files that cannot be used.

mod check;
mod inspect;
mod signing;

use lexopt::prelude::*;
use std::ffi::OsString;
use std::process::ExitCode;

const HELP: &str = "\
fidius: inspect, check, call and sign fidius plugin libraries

usage:
  fidius describe LIB                     what every plugin in LIB offers, as JSON
  fidius call LIB PLUGIN METHOD [ARGS]    call a method: ARGS is a JSON array, the
                                          result is printed as JSON (a stream, one
                                          value per line); bytes are arrays of
                                          numbers, or strings (their UTF-8)
  fidius check LIB [OPTIONS]              every reason a host would refuse LIB
      --against REF                       expect the interface of REF's plugins (a
                                          library built against the host's interface)
      --plugin NAME                       check this plugin only
      --key PUB                           require a signature by this public key
                                          (repeatable)
      --pin SHA256                        or accept this content digest (repeatable)
      --json                              the report as JSON
  fidius keygen [--out BASE] [--force]    write a key pair: BASE.key (secret, readable
                                          by you only) and BASE.pub (default: fidius)
  fidius sign LIB --key SECRET            write LIB's signature to LIB.sig
  fidius verify LIB --key PUB... [--pin SHA256]... [--json]
                                          check LIB's signature as a host would
  fidius hash LIB                         LIB's SHA-256, to pin it in a host

  fidius --help | --version

Exit status: 0 success; 1 a call failed or a library was refused; 2 a usage error or
a file that cannot be used.";

/// Why a command failed, and so its exit status.
pub enum Failure {
    /// Wrong arguments, or a file that cannot be used: exit status 2.
    Usage(String),
    /// The command ran and the answer is no (a failed call, a refused library): exit
    /// status 1. The message is printed; a report may already have been.
    Refused(String),
}

impl From<fidius::CallError> for Failure {
    fn from(e: fidius::CallError) -> Self {
        Failure::Refused(e.to_string())
    }
}

impl From<lexopt::Error> for Failure {
    fn from(e: lexopt::Error) -> Self {
        Failure::Usage(format!("{e}; see `fidius --help`"))
    }
}

fn main() -> ExitCode {
    match run(lexopt::Parser::from_env()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Refused(message)) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            ExitCode::from(1)
        }
    }
}

/// The options any command may take; each command says which it accepts.
#[derive(Default)]
pub struct Options {
    pub positional: Vec<String>,
    pub keys: Vec<OsString>,
    pub pins: Vec<String>,
    pub against: Option<OsString>,
    pub plugin: Option<String>,
    pub out: Option<OsString>,
    pub force: bool,
    pub json: bool,
}

fn run(mut parser: lexopt::Parser) -> Result<(), Failure> {
    let command = match parser.next()? {
        Some(Value(command)) => command.string()?,
        Some(Short('h') | Long("help")) | None => {
            println!("{HELP}");
            return Ok(());
        }
        Some(Short('V') | Long("version")) => {
            println!("fidius {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Some(other) => return Err(other.unexpected().into()),
    };
    let mut options = Options::default();
    let accepted: &[&str] = match command.as_str() {
        "describe" | "call" | "hash" => &[],
        "check" => &["against", "plugin", "key", "pin", "json"],
        "keygen" => &["out", "force"],
        "sign" => &["key"],
        "verify" => &["key", "pin", "json"],
        "help" => {
            println!("{HELP}");
            return Ok(());
        }
        other => {
            return Err(Failure::Usage(format!(
                "unknown command `{other}`; see `fidius --help`"
            )))
        }
    };
    while let Some(arg) = parser.next()? {
        let name = match &arg {
            Long(name) => *name,
            Short('h') => "help",
            Value(_) => "",
            _ => return Err(arg.unexpected().into()),
        };
        if name == "help" {
            println!("{HELP}");
            return Ok(());
        }
        if !name.is_empty() && !accepted.contains(&name) {
            return Err(Failure::Usage(format!(
                "`fidius {command}` takes no option --{name}; see `fidius --help`"
            )));
        }
        match arg {
            Value(v) => options.positional.push(v.string()?),
            Long("key") => options.keys.push(parser.value()?),
            Long("pin") => options.pins.push(parser.value()?.string()?),
            Long("against") => options.against = Some(parser.value()?),
            Long("plugin") => options.plugin = Some(parser.value()?.string()?),
            Long("out") => options.out = Some(parser.value()?),
            Long("force") => options.force = true,
            Long("json") => options.json = true,
            _ => return Err(arg.unexpected().into()),
        }
    }
    let p = &options.positional;
    let arity = |range: std::ops::RangeInclusive<usize>, usage: &str| {
        if range.contains(&p.len()) {
            Ok(())
        } else {
            Err(Failure::Usage(format!("usage: {usage}")))
        }
    };
    match command.as_str() {
        "describe" => {
            arity(1..=1, "fidius describe LIB")?;
            inspect::describe(&p[0])
        }
        "call" => {
            arity(3..=4, "fidius call LIB PLUGIN METHOD ['[json, arguments]']")?;
            let args = p.get(3).map(String::as_str).unwrap_or("[]");
            inspect::call(&p[0], &p[1], &p[2], args)
        }
        "check" => {
            arity(1..=1, "fidius check LIB [--against REF] [--plugin NAME] [--key PUB]... [--pin SHA256]... [--json]")?;
            check::check(&p[0], &options)
        }
        "keygen" => {
            arity(0..=0, "fidius keygen [--out BASE] [--force]")?;
            signing::keygen(&options)
        }
        "sign" => {
            arity(1..=1, "fidius sign LIB --key SECRET")?;
            signing::sign(&p[0], &options)
        }
        "verify" => {
            arity(
                1..=1,
                "fidius verify LIB --key PUB... [--pin SHA256]... [--json]",
            )?;
            signing::verify(&p[0], &options)
        }
        "hash" => {
            arity(1..=1, "fidius hash LIB")?;
            signing::hash(&p[0])
        }
        _ => unreachable!("commands are matched above"),
    }
}
