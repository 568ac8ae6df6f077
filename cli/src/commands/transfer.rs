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
    let cli = ctx.cli;
    import_into(ctx, a, || {
        Ok(Box::new(FileKeys(db::open(cli, Mode::Create)?)) as Box<dyn KeySpace>)
    })
}

/// Where `import` writes and `export` reads: the file, or a server in client mode.
pub trait KeySpace {
    /// Writes the puts atomically; returns the revision after them.
    fn put_batch(&self, puts: Vec<(Vec<u8>, Vec<u8>)>) -> CliResult<i64>;
    /// The current revision.
    fn revision(&self) -> CliResult<i64>;
    /// A range read.
    fn range(&self, range: &Range, opts: &RangeOptions) -> CliResult<etch::RangeResponse>;
    /// Ends the work (closing a file reports a failed final checkpoint).
    fn finish(self: Box<Self>) -> CliResult;
}

/// The file named by `--db`.
struct FileKeys(etch::Store);

impl KeySpace for FileKeys {
    fn put_batch(&self, puts: Vec<(Vec<u8>, Vec<u8>)>) -> CliResult<i64> {
        let ops = puts.into_iter().map(|(k, v)| WriteOp::put(k, v)).collect();
        self.0.batch(ops)?;
        Ok(self.0.revision())
    }

    fn revision(&self) -> CliResult<i64> {
        Ok(self.0.revision())
    }

    fn range(&self, range: &Range, opts: &RangeOptions) -> CliResult<etch::RangeResponse> {
        Ok(self.0.range_with(range, opts)?)
    }

    fn finish(self: Box<Self>) -> CliResult {
        db::close(self.0)
    }
}

/// `import` into `open()`'s key space (opened once the file is checked).
pub fn import_into<'a>(
    ctx: &mut Ctx,
    a: &ImportArgs,
    open: impl FnOnce() -> CliResult<Box<dyn KeySpace + 'a>>,
) -> CliResult {
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
    let store = open()?;
    let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut batch_keys = std::collections::HashSet::new();
    let mut batch_bytes = 0;
    let mut imported = 0u64;
    for_each_line(input, &name, |key, value| {
        // A key twice in one batch is rejected by the engine; the later line wins, in order.
        let full = batch.len() >= BATCH_OPS || batch_bytes + key.len() + value.len() > BATCH_BYTES;
        if !batch.is_empty() && (full || batch_keys.contains(&key)) {
            store.put_batch(std::mem::take(&mut batch))?;
            batch_keys.clear();
            batch_bytes = 0;
        }
        batch_bytes += key.len() + value.len();
        batch_keys.insert(key.clone());
        batch.push((key, value));
        imported += 1;
        Ok(())
    })?;
    if !batch.is_empty() {
        store.put_batch(batch)?;
    }
    bar.finish_and_clear();
    let revision = store.revision()?;
    store.finish()?;
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
    let cli = ctx.cli;
    export_from(a, || {
        Ok(Box::new(FileKeys(db::open(cli, Mode::ReadOnly)?)) as Box<dyn KeySpace>)
    })
}

/// `export` from `open()`'s key space.
pub fn export_from<'a>(
    a: &ExportArgs,
    open: impl FnOnce() -> CliResult<Box<dyn KeySpace + 'a>>,
) -> CliResult {
    if a.rev < 0 {
        return Err(CliError::bad_args(format!(
            "revision {} is negative",
            a.rev
        )));
    }
    let store = open()?;
    let revision = if a.rev == 0 { store.revision()? } else { a.rev };
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
    let total = store.range(&whole, &at(0, true))?.count;
    let bar = progress::bar(total as u64, false, "exporting");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut range = whole.clone();
    loop {
        let page = store.range(&range, &at(EXPORT_PAGE, false))?;
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
    store.finish()
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
