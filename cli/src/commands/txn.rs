//! `txn [-i]`.

use super::Ctx;
use crate::args::TxnArgs;
use crate::db::{self, Mode};
use crate::error::CliResult;
use crate::txn_parse;

/// Reads the transaction from stdin (before opening the file, so the file is not held locked
/// while someone types), runs it and prints SUCCESS/FAILURE and the responses.
pub fn run(ctx: &mut Ctx, a: &TxnArgs) -> CliResult {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut stdout = std::io::stdout();
    let prompts: Option<&mut dyn std::io::Write> = if a.interactive {
        Some(&mut stdout)
    } else {
        None
    };
    let txn = txn_parse::read_txn(&mut input, prompts)?;
    let store = db::open(ctx.cli, Mode::Create)?;
    let resp = store.txn(txn)?;
    db::close(store)?;
    Ok(ctx.printer.txn(&resp)?)
}
