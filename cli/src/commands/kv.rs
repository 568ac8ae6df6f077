//! `put`, `get`, `del`.

use std::io::Read;

use super::Ctx;
use crate::args::{DelArgs, GetArgs, PutArgs};
use crate::db::{self, Mode};
use crate::error::{CliError, CliResult};
use crate::requests;

/// `put KEY [VALUE]`: the value comes from stdin, byte for byte, when omitted; as etcdctl,
/// empty stdin is then an argument error (`put KEY ""` writes an empty value).
pub fn put(ctx: &mut Ctx, a: &PutArgs) -> CliResult {
    let op = requests::put_op(a, put_value(a)?)?;
    let store = db::open(ctx.cli, Mode::Create)?;
    let resp = store.put_with(op)?;
    db::close(store)?;
    Ok(ctx.printer.put(&resp)?)
}

/// The value of `put`: the argument, nothing with `--ignore-value`, else stdin.
pub fn put_value(a: &PutArgs) -> CliResult<Vec<u8>> {
    if a.ignore_value && a.value.is_some() {
        return Err(CliError::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let value = match (&a.value, a.ignore_value) {
        (Some(v), _) => requests::bytes(v).to_vec(),
        (None, true) => Vec::new(),
        (None, false) => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(|e| {
                CliError::invalid_input(format!("reading the value from stdin: {e}"))
            })?;
            if buf.is_empty() {
                return Err(CliError::bad_args(
                    "put command needs 1 argument and input from stdin or 2 arguments",
                ));
            }
            buf
        }
    };
    Ok(value)
}

/// `get KEY [RANGE_END]`.
pub fn get(ctx: &mut Ctx, a: &GetArgs) -> CliResult {
    let range = requests::get_range(a)?;
    let opts = requests::range_options(a);
    let store = db::open(ctx.cli, Mode::ReadOnly)?;
    let resp = store.range_with(&range, &opts)?;
    db::close(store)?;
    ctx.printer.set_value_only(a.print_value_only);
    Ok(ctx.printer.get(&resp, a.count_only)?)
}

/// `del KEY [RANGE_END]`.
pub fn del(ctx: &mut Ctx, a: &DelArgs) -> CliResult {
    let range = requests::del_range(a)?;
    let store = db::open(ctx.cli, Mode::Existing)?;
    let resp = store.delete_range(range, a.prev_kv)?;
    db::close(store)?;
    Ok(ctx.printer.del(&resp)?)
}
