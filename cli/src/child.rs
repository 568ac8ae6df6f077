//! Running the user's command for `watch -- COMMAND` and `lock -- COMMAND`.

use std::process::{Command, ExitStatus};

use crate::error::{CliError, CliResult};

/// Runs `argv` with extra environment variables, inheriting stdin, stdout and stderr, and
/// waits for it.
pub fn run(argv: &[String], env: &[(&str, String)]) -> CliResult<ExitStatus> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| CliError::bad_args("empty command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.status()
        .map_err(|e| CliError::failed(format!("command {argv:?} error ({e})")))
}
