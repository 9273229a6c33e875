//! `hearth`: the Hearth chat client. With no command it opens the full-screen
//! UI (`hearth_cli::tui`); with one, it does that one thing and exits (script
//! mode), printing text or, with `--json`, one JSON value per line. The exit
//! code tells success from each class of failure (see [`Exit`]).

mod script;

use std::process::ExitCode;

use clap::Parser;
use script::{Cli, Exit, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hearth: cannot start: {error}");
            return ExitCode::from(Exit::Other as u8);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hearth: {}", explain(&error));
            ExitCode::from(Exit::of(&error) as u8)
        }
    }
}

/// The error and its causes on one line, each said once (an I/O error tends
/// to repeat its cause in its own message).
fn explain(error: &anyhow::Error) -> String {
    let mut said = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if said.contains(&text) {
            continue;
        }
        if !said.is_empty() {
            said.push_str(": ");
        }
        said.push_str(&text);
    }
    said
}
