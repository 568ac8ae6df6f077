//! `put`, `get`, `del` and `txn` against a server: the same flags and validation as on a file
//! ([`crate::requests`]), the same printers.

use etch_server::proto::etcdserverpb::kv_client::KvClient;

use crate::args::{DelArgs, GetArgs, PutArgs, TxnArgs};
use crate::client::{convert, ids, Client};
use crate::commands::{kv, Ctx};
use crate::error::CliResult;
use crate::{requests, txn_parse};

/// `put`.
pub fn put(ctx: &mut Ctx, c: &Client, a: &PutArgs) -> CliResult {
    let op = requests::put_op(a, kv::put_value(a)?)?;
    let mut kv = KvClient::new(c.channel.clone());
    let resp = c.call(kv.put(convert::put_request(op)))?;
    ctx.printer.set_server(ids(resp.header.as_ref()));
    Ok(ctx.printer.put(&convert::put_response(resp))?)
}

/// `get`; `--consistency s` asks for a serializable read.
pub fn get(ctx: &mut Ctx, c: &Client, a: &GetArgs) -> CliResult {
    let range = requests::get_range(a)?;
    let opts = requests::range_options(a);
    let req = convert::range_request(&range, &opts, a.consistency == "s");
    let mut kv = KvClient::new(c.channel.clone());
    let resp = c.call(kv.range(req))?;
    ctx.printer.set_server(ids(resp.header.as_ref()));
    ctx.printer.set_value_only(a.print_value_only);
    Ok(ctx
        .printer
        .get(&convert::range_response(resp), a.count_only)?)
}

/// `del`.
pub fn del(ctx: &mut Ctx, c: &Client, a: &DelArgs) -> CliResult {
    let range = requests::del_range(a)?;
    let mut kv = KvClient::new(c.channel.clone());
    let resp = c.call(kv.delete_range(convert::delete_request(&range, a.prev_kv)))?;
    ctx.printer.set_server(ids(resp.header.as_ref()));
    Ok(ctx.printer.del(&convert::delete_response(resp))?)
}

/// `txn [-i]`: the transaction is read from stdin before anything is sent.
pub fn txn(ctx: &mut Ctx, c: &Client, a: &TxnArgs) -> CliResult {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut stdout = std::io::stdout();
    let prompts: Option<&mut dyn std::io::Write> = if a.interactive {
        Some(&mut stdout)
    } else {
        None
    };
    let txn = txn_parse::read_txn(&mut input, prompts)?;
    let mut kv = KvClient::new(c.channel.clone());
    let resp = c.call(kv.txn(convert::txn_request(txn)))?;
    ctx.printer.set_server(ids(resp.header.as_ref()));
    Ok(ctx.printer.txn(&convert::txn_response(resp))?)
}
