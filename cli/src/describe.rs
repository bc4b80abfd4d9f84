//! `completions` and `man`: the command describes itself from the clap
//! definition that parses it, so neither can drift from the verbs.

use std::io::Write;

use clap_complete::Shell;

use crate::error::CliError;

/// The completion script of `shell` for `command`, on stdout.
pub fn completions(mut command: clap::Command, shell: Shell) -> Result<(), CliError> {
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    print(&script)
}

/// The man page (roff, section 1) of `command`, on stdout.
pub fn man(command: clap::Command) -> Result<(), CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| CliError::Failed(format!("cannot render the man page: {e}")))?;
    print(&page)
}

/// Whole, then flushed: a closed pipe (`hemostat man | head`) is one line
/// on stderr and exit 1, not a panic.
fn print(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Failed(format!("cannot write to stdout: {e}")))
}
