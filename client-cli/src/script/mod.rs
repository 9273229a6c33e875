//! Script mode and the command line of `hearth`, by part: the grammar
//! (`cli`), the exit codes (`exit`), profiles and account commands
//! (`accounts`), the commands (`run`), and what they print (`print`).

mod accounts;
mod cli;
mod exit;
mod print;
mod run;

pub(crate) use accounts::*;
pub(crate) use cli::*;
pub(crate) use exit::*;
pub(crate) use print::*;
pub(crate) use run::*;
