//! `etch`: etcdctl's commands on a local etch file, or with `--endpoints` on a server.
//!
//! Parsing lives in [`args`], the commands in [`commands`], printing in [`output`]. Errors go to
//! stderr as `Error: <message>` with etcdctl's exit codes (see [`error`]).

mod args;
mod child;
mod client;
mod commands;
mod db;
mod error;
mod help;
mod output;
mod progress;
mod requests;
mod signals;
mod txn_parse;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use crate::error::{EXIT_BAD_ARGS, EXIT_OK};

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are not errors; everything else clap rejects is a bad argument.
            let code = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    if !e.use_stderr() =>
                {
                    EXIT_OK
                }
                // etcd exits 2 on a bad flag; `etch serve` takes etcd's flags.
                _ if std::env::args().nth(1).as_deref() == Some("serve") => {
                    commands::serve::EXIT_BAD_FLAG
                }
                _ => EXIT_BAD_ARGS,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match commands::run(&cli) {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`etch get ... | head`): nothing left to say to anyone.
        Err(e) if e.broken_pipe => ExitCode::from(EXIT_OK),
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("Error: {e}");
            }
            ExitCode::from(e.code)
        }
    }
}
