//! `import FILE` and `export`: keys as JSON lines, one key per line, in the kv shape of
//! `get -w json` (base64 key and value).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use etch::{Range, RangeOptions, WriteOp};
use serde_json::{json, Value};

use super::Ctx;
use crate::args::{ExportArgs, Format, ImportArgs};
use crate::db::{self, Mode};
use crate::error::{CliError, CliResult};
use crate::output::json;
use crate::progress;

/// Most writes in one import batch (the engine's default `max_txn_ops` is 128).
const BATCH_OPS: usize = 128;
/// Most key and value bytes in one import batch, under the engine's default 1.5 MiB request
/// limit.
const BATCH_BYTES: usize = 1 << 20;
/// Keys read per page by export.
const EXPORT_PAGE: i64 = 1000;

/// Counts the bytes read through it, for the progress bar.
struct Counted<R> {
    inner: R,
    bar: indicatif::ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// `import FILE`: batches commit atomically one after another. A file is checked completely
/// before anything is written, so a bad line (the error names it) leaves the store unchanged;
/// stdin cannot be read twice, so there a bad line stops the import after the batches before it.
pub fn import(ctx: &mut Ctx, a: &ImportArgs) -> CliResult {
    let name = a.file.display().to_string();
    let from_stdin = a.file.as_os_str() == "-";
    let open_file = || File::open(&a.file).map_err(|e| CliError::failed(format!("{name}: {e}")));
    if !from_stdin {
        for_each_line(BufReader::new(open_file()?), &name, |_, _| Ok(()))?;
    }
    let (reader, bar): (Box<dyn Read>, _) = if from_stdin {
        (Box::new(std::io::stdin()), indicatif::ProgressBar::hidden())
    } else {
        let f = open_file()?;
        let len = f.metadata()?.len();
        (Box::new(f), progress::bar(len, true, "importing"))
    };
    let input = BufReader::new(Counted {
        inner: reader,
        bar: bar.clone(),
    });
    let store = db::open(ctx.cli, Mode::Create)?;
    let mut batch: Vec<WriteOp> = Vec::new();
    let mut batch_keys = std::collections::HashSet::new();
    let mut batch_bytes = 0;
    let mut imported = 0u64;
    for_each_line(input, &name, |key, value| {
        // A key twice in one batch is rejected by the engine; the later line wins, in order.
        let full = batch.len() >= BATCH_OPS || batch_bytes + key.len() + value.len() > BATCH_BYTES;
        if !batch.is_empty() && (full || batch_keys.contains(&key)) {
            store.batch(std::mem::take(&mut batch))?;
            batch_keys.clear();
            batch_bytes = 0;
        }
        batch_bytes += key.len() + value.len();
        batch_keys.insert(key.clone());
        batch.push(WriteOp::put(key, value));
        imported += 1;
        Ok(())
    })?;
    if !batch.is_empty() {
        store.batch(batch)?;
    }
    bar.finish_and_clear();
    let revision = store.revision();
    db::close(store)?;
    match ctx.cli.write_out {
        Format::Json => {
            let header = ctx.printer.json_style().header(revision);
            let v = json!({ "header": header, "imported": imported });
            ctx.printer.line(&v.to_string())?;
        }
        Format::Fields => {
            ctx.printer.line(&format!(
                "\"Revision\" : {revision}\n\"Imported\" : {imported}"
            ))?;
        }
        Format::Simple | Format::Table => {
            ctx.printer
                .line(&format!("Imported {imported} keys (revision {revision})"))?;
        }
    }
    Ok(())
}

/// Calls `f` with the key and value of every non-blank line; a bad line is invalid input
/// naming `name` and the line number.
fn for_each_line(
    input: impl BufRead,
    name: &str,
    mut f: impl FnMut(Vec<u8>, Vec<u8>) -> CliResult,
) -> CliResult {
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = parse_line(&line)
            .map_err(|e| CliError::invalid_input(format!("{name} line {}: {e}", n + 1)))?;
        f(key, value)?;
    }
    Ok(())
}

/// The key and value of one line.
fn parse_line(line: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| -> Result<Vec<u8>, String> {
        let s = v
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no string field \"{name}\""))?;
        STANDARD
            .decode(s)
            .map_err(|e| format!("\"{name}\" is not base64: {e}"))
    };
    let key = field("key")?;
    if key.is_empty() {
        return Err("empty key".to_string());
    }
    let value = match v.get("value") {
        None | Some(Value::Null) => Vec::new(),
        Some(_) => field("value")?,
    };
    Ok((key, value))
}

/// `export`: pages through the keys at one revision, so the output is one consistent view.
pub fn export(ctx: &mut Ctx, a: &ExportArgs) -> CliResult {
    if a.rev < 0 {
        return Err(CliError::bad_args(format!(
            "revision {} is negative",
            a.rev
        )));
    }
    let store = db::open(ctx.cli, Mode::ReadOnly)?;
    let revision = if a.rev == 0 { store.revision() } else { a.rev };
    let whole = match &a.prefix {
        Some(p) => Range::prefix(p),
        None => Range::all(),
    };
    let at = |limit: i64, count_only: bool| RangeOptions {
        revision,
        limit,
        count_only,
        ..Default::default()
    };
    let total = store.range_with(&whole, &at(0, true))?.count;
    let bar = progress::bar(total as u64, false, "exporting");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut range = whole.clone();
    loop {
        let page = store.range_with(&range, &at(EXPORT_PAGE, false))?;
        for kv in &page.kvs {
            serde_json::to_writer(&mut out, &json::export_kv(kv))?;
            out.write_all(b"\n")?;
        }
        bar.inc(page.kvs.len() as u64);
        let Some(last) = page.kvs.last() else { break };
        if !page.more {
            break;
        }
        // Resume just after the last key, keeping the end of the whole range.
        let mut next = last.key.clone();
        next.push(0);
        range = if whole.end() == [0] {
            Range::from_key(next)
        } else {
            Range::between(next, whole.end())
        };
    }
    out.flush()?;
    bar.finish_and_clear();
    db::close(store)
}

/// Used by tests of the line format.
#[cfg(test)]
mod tests {
    #[test]
    fn lines_parse() {
        let (k, v) = super::parse_line(r#"{"key":"YQ==","value":"Yg=="}"#).unwrap();
        assert_eq!((k.as_slice(), v.as_slice()), (&b"a"[..], &b"b"[..]));
        assert!(super::parse_line(r#"{"key":"!!"}"#).is_err());
        assert!(super::parse_line(r#"{"value":"Yg=="}"#).is_err());
        assert!(super::parse_line("nope").is_err());
        let (_, v) = super::parse_line(r#"{"key":"YQ=="}"#).unwrap();
        assert!(v.is_empty());
    }
}
