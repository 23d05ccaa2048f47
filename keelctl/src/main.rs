//! `keelctl`: keel's command-line client; this file picks the subcommand and maps its outcome to an exit code.
//!
//! # Usage
//! ```text
//! keelctl validate FILE     check a user-data file offline, with the same parser PID 1 uses
//! ```
//!
//! # Exit codes
//! | Code | Meaning |
//! |---|---|
//! | 0 | success (`validate`: the file is valid) |
//! | 1 | `validate`: the file is invalid; every error is printed, one per line |
//! | 100 | usage error: bad command line |
//! | 111 | system error: a file could not be read |

mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "keelctl", version, about = "keel's command-line client")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a user-data file: prints `FILE: ok` and a summary, or every error.
    Validate(validate::ValidateArgs),
}

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Invalid = 1,
    Usage = 100,
    System = 111,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let usage = error.use_stderr();
            let _ = error.print();
            return ExitCode::from(if usage { Exit::Usage as u8 } else { Exit::Success as u8 });
        }
    };
    let exit = match cli.command {
        Command::Validate(args) => validate::run(&args),
    };
    ExitCode::from(exit as u8)
}
