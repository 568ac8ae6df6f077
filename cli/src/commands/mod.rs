//! One module per group of commands; [`run`] dispatches.
//!
//! Each command opens the file, does its work, prints through a [`Printer`] and closes the
//! file explicitly, so a failed final checkpoint is reported rather than lost in a drop.

pub(crate) mod cert;
mod elect;
mod kv;
mod lease;
mod lock;
mod maintenance;
pub(crate) mod remote;
pub(crate) mod serve;
mod session;
mod snapshot;
mod transfer;
mod txn;
mod watch;

use clap::CommandFactory;

use crate::args::{CheckArgs, Cli, Command, EndpointCommand};
use crate::error::{CliError, CliResult, EXIT_OK};
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
                ..Default::default()
            },
        ),
    };
    let mut conn = cli.conn.clone();
    // ETCDCTL_ENDPOINTS is etcdctl's variable: it selects a server only when no file is named.
    if !db_named() {
        conn.fall_back_to_etcdctl_env();
    }
    if conn.is_client() {
        if let Some(result) = remote::run(&mut ctx, &conn, &cli.command) {
            if db_named_on_command_line() {
                return Err(CliError::bad_args(
                    "--db names a file and --endpoints a server: give one of them",
                ));
            }
            let code = result?;
            ctx.printer.flush()?;
            return Ok(code);
        }
    }
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
        Command::Endpoint(EndpointCommand::Health) => Err(needs_server("endpoint health")),
        Command::Member(_) => Err(needs_server("member list")),
        Command::Alarm(_) => Err(needs_server("alarm")),
        Command::Check(CheckArgs { perf: Some(_), .. }) => Err(needs_server("check perf")),
        Command::Check(a) => maintenance::check(&mut ctx, a).map(|_| EXIT_OK),
        Command::Snapshot(c) => snapshot::run(&mut ctx, c).map(|_| EXIT_OK),
        Command::Lock(a) => lock::run(&mut ctx, a),
        Command::Elect(a) => elect::run(&mut ctx, a).map(|_| EXIT_OK),
        Command::Import(a) => transfer::import(&mut ctx, a).map(|_| EXIT_OK),
        Command::Export(a) => transfer::export(&mut ctx, a).map(|_| EXIT_OK),
        Command::Serve(a) => serve::run(&cli.db, a),
        Command::Cert(c) => cert::run(c).map(|_| EXIT_OK),
        Command::Completion(a) => {
            clap_complete::generate(a.shell, &mut Cli::command(), "etch", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
    }?;
    ctx.printer.flush()?;
    Ok(code)
}

/// A command that only a server can answer, run on a file.
fn needs_server(what: &str) -> CliError {
    CliError::bad_args(format!(
        "{what} asks a server: give --endpoints (or ETCH_ENDPOINTS); a file has no members, \
         health or alarms"
    ))
}

/// True when the file was named: `--db` on the command line or `ETCH_DB`.
fn db_named() -> bool {
    std::env::var_os("ETCH_DB").is_some() || db_named_on_command_line()
}

/// True when `--db` is on the command line.
fn db_named_on_command_line() -> bool {
    std::env::args_os().any(|a| {
        let a = a.to_string_lossy();
        a == "--db" || a.starts_with("--db=")
    })
}
