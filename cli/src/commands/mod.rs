//! One module per group of commands; [`run`] dispatches.
//!
//! Each command opens the file, does its work, prints through a [`Printer`] and closes the
//! file explicitly, so a failed final checkpoint is reported rather than lost in a drop.

mod elect;
mod kv;
mod lease;
mod lock;
mod maintenance;
pub(crate) mod serve;
mod session;
mod snapshot;
mod transfer;
mod txn;
mod watch;

use clap::CommandFactory;

use crate::args::{Cli, Command, EndpointCommand};
use crate::error::{CliResult, EXIT_OK};
use crate::output::json::Json;
use crate::output::Printer;

/// Everything a command needs besides its own arguments.
pub struct Ctx<'a> {
    /// The parsed command line.
    pub cli: &'a Cli,
    /// Where responses go.
    pub printer: Printer,
}

/// Runs the command; returns the exit code on success (non-zero only when `lock -- COMMAND`
/// passes on its command's status).
pub fn run(cli: &Cli) -> CliResult<u8> {
    let mut ctx = Ctx {
        cli,
        printer: Printer::stdout(
            cli.write_out,
            cli.hex,
            Json {
                string_ids: cli.string_ids,
            },
        ),
    };
    let code = match &cli.command {
        Command::Put(a) => kv::put(&mut ctx, a).map(|_| EXIT_OK),
        Command::Get(a) => kv::get(&mut ctx, a).map(|_| EXIT_OK),
        Command::Del(a) => kv::del(&mut ctx, a).map(|_| EXIT_OK),
        Command::Txn(a) => txn::run(&mut ctx, a).map(|_| EXIT_OK),
        Command::Watch(a) => watch::run(&mut ctx, a).map(|_| EXIT_OK),
        Command::Lease(c) => lease::run(&mut ctx, c).map(|_| EXIT_OK),
        Command::Compaction(a) => maintenance::compaction(&mut ctx, a).map(|_| EXIT_OK),
        Command::Defrag => maintenance::defrag(&mut ctx).map(|_| EXIT_OK),
        Command::Status => maintenance::status(&mut ctx).map(|_| EXIT_OK),
        Command::Endpoint(EndpointCommand::Status) => {
            maintenance::endpoint_status(&mut ctx).map(|_| EXIT_OK)
        }
        Command::Check(a) => maintenance::check(&mut ctx, a).map(|_| EXIT_OK),
        Command::Snapshot(c) => snapshot::run(&mut ctx, c).map(|_| EXIT_OK),
        Command::Lock(a) => lock::run(&mut ctx, a),
        Command::Elect(a) => elect::run(&mut ctx, a).map(|_| EXIT_OK),
        Command::Import(a) => transfer::import(&mut ctx, a).map(|_| EXIT_OK),
        Command::Export(a) => transfer::export(&mut ctx, a).map(|_| EXIT_OK),
        Command::Serve(a) => serve::run(&cli.db, a),
        Command::Completion(a) => {
            clap_complete::generate(a.shell, &mut Cli::command(), "etch", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
    }?;
    ctx.printer.flush()?;
    Ok(code)
}
