//! `watch` against a server: follows live changes until interrupted (Ctrl-C), as etcdctl; with
//! `--rev`, history is replayed first. `-i` reads `watch ...` lines from stdin, each adding a
//! watch on the same stream.

use std::ffi::OsString;
use std::io::BufRead;
use std::time::Duration;

use clap::Parser;
use etch::EventKind;
use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::watch_client::WatchClient;
use tokio::sync::mpsc;

use crate::args::{Format, WatchArgs};
use crate::child;
use crate::client::{convert, ids, status_error, Client};
use crate::commands::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::text::go_quote;
use crate::requests;
use crate::signals;

/// How often the wait for the next response checks for Ctrl-C.
const POLL: Duration = Duration::from_millis(200);

/// One line of `watch -i`: `watch KEY [RANGE_END] [--prefix] [--rev N] [--prev-kv]`.
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_help_flag = true)]
struct WatchLine {
    key: OsString,
    range_end: Option<OsString>,
    #[arg(long)]
    prefix: bool,
    #[arg(long, default_value_t = 0)]
    rev: i64,
    #[arg(long)]
    prev_kv: bool,
}

/// The create request of one watch.
fn create(
    key: &OsString,
    end: Option<&OsString>,
    prefix: bool,
    rev: i64,
    prev_kv: bool,
) -> CliResult<pb::WatchRequest> {
    if rev < 0 {
        return Err(CliError::bad_args(format!("revision {rev} is negative")));
    }
    let range = requests::key_range(
        requests::bytes(key),
        end.map(|e| requests::bytes(e)),
        prefix,
        false,
    )?;
    Ok(pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: range.start().to_vec(),
                range_end: range.end().to_vec(),
                start_revision: rev,
                prev_kv,
                ..Default::default()
            },
        )),
    })
}

/// What the stdin reader of `watch -i` reports.
enum Input {
    /// A watch to add.
    Watch(pb::WatchRequest),
    /// Input ended or failed (etcdctl exits with invalid input).
    End(String),
}

/// Reads `watch ...` lines; a bad line is reported on stderr and skipped, as etcdctl does.
fn read_lines(tx: mpsc::Sender<Input>) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    loop {
        let mut line = String::new();
        let end = match input.read_line(&mut line) {
            Ok(0) => "EOF".to_string(),
            Err(e) => e.to_string(),
            Ok(_) => {
                if let Some(req) = parse_line(line.trim()) {
                    if tx.blocking_send(Input::Watch(req)).is_err() {
                        return;
                    }
                }
                continue;
            }
        };
        let _ = tx.blocking_send(Input::End(end));
        return;
    }
}

fn parse_line(line: &str) -> Option<pb::WatchRequest> {
    let words = match crate::txn_parse::argify(line) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("Invalid command {line} ({})", e.message);
            return None;
        }
    };
    let Some((first, rest)) = words.split_first() else {
        eprintln!("Invalid command {line} (command type or key is not provided)");
        return None;
    };
    if first.as_encoded_bytes() != b"watch" {
        eprintln!("Invalid command {line} (only support watch)");
        return None;
    }
    if rest.is_empty() {
        eprintln!("Invalid command {line} (command type or key is not provided)");
        return None;
    }
    let parsed = WatchLine::try_parse_from(rest)
        .map_err(|e| e.to_string())
        .and_then(|w| {
            create(&w.key, w.range_end.as_ref(), w.prefix, w.rev, w.prev_kv).map_err(|e| e.message)
        });
    match parsed {
        Ok(req) => Some(req),
        Err(e) => {
            eprintln!(
                "Invalid command {line} ({})",
                e.lines().next().unwrap_or("")
            );
            None
        }
    }
}

/// Runs the watch until interrupted, the server cancels it, or (with `-i`) stdin ends.
pub fn run(ctx: &mut Ctx, c: &Client, a: &WatchArgs) -> CliResult {
    if a.no_follow {
        return Err(CliError::bad_args(
            "--no-follow is for files; a watch on a server follows until interrupted",
        ));
    }
    let (tx, rx) = mpsc::channel::<pb::WatchRequest>(16);
    let (input_tx, mut input_rx) = mpsc::channel::<Input>(16);
    signals::install()?;
    if a.interactive {
        std::thread::spawn(move || read_lines(input_tx));
        // etcd answers the stream only once a request has arrived: wait for the first watch.
        loop {
            if signals::interrupted() {
                return Ok(());
            }
            let input = c.block_on(async { tokio::time::timeout(POLL, input_rx.recv()).await });
            match input {
                Err(_) => continue,
                Ok(Some(Input::Watch(req))) => {
                    tx.try_send(req)
                        .map_err(|_| CliError::failed("cannot queue the watch request"))?;
                    break;
                }
                Ok(Some(Input::End(why))) => return Err(end_of_input(&why)),
                Ok(None) => return Err(end_of_input("EOF")),
            }
        }
    } else {
        let key = a
            .key
            .as_ref()
            .ok_or_else(|| CliError::bad_args("watch needs a key"))?;
        let req = create(key, a.range_end.as_ref(), a.prefix, a.rev, a.prev_kv)?;
        tx.try_send(req)
            .map_err(|_| CliError::failed("cannot queue the watch request"))?;
        drop(input_tx);
    }
    let mut client = WatchClient::new(c.channel.clone());
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut responses = c
        .block_on(async {
            tokio::time::timeout(c.conn().command_timeout, client.watch(stream)).await
        })
        .map_err(|_| CliError::failed(crate::client::DEADLINE_EXCEEDED))?
        .map_err(|s| status_error(&s))?
        .into_inner();
    loop {
        if signals::interrupted() {
            return Ok(());
        }
        let next = c.block_on(async {
            tokio::select! {
                r = responses.message() => Some(Ok(r)),
                i = input_rx.recv(), if a.interactive => i.map(Err),
                _ = tokio::time::sleep(POLL) => None,
            }
        });
        let resp = match next {
            None => continue,
            Some(Err(Input::Watch(req))) => {
                tx.try_send(req)
                    .map_err(|_| CliError::failed("cannot queue the watch request"))?;
                continue;
            }
            Some(Err(Input::End(why))) => return Err(end_of_input(&why)),
            Some(Ok(Ok(Some(resp)))) => resp,
            Some(Ok(Ok(None))) => {
                return Err(CliError::failed("watch stream closed by the server"));
            }
            Some(Ok(Err(status))) => return Err(status_error(&status)),
        };
        if resp.canceled {
            return canceled(ctx, resp);
        }
        if resp.created || resp.events.is_empty() {
            continue;
        }
        ctx.printer.set_server(ids(resp.header.as_ref()));
        let header_revision = resp.header.as_ref().map_or(0, |h| h.revision);
        let resp = convert::watch_response(resp);
        ctx.printer.watch(&resp)?;
        ctx.printer.flush()?;
        if !a.command.is_empty() {
            run_hook(&a.command, header_revision, &resp)?;
        }
    }
}

/// etcdctl's error when `watch -i` input ends or fails (exit 3).
fn end_of_input(why: &str) -> CliError {
    CliError::invalid_input(format!("Error reading watch request line: {why}"))
}

/// As etcdctl: the canceled response in JSON output, the reason on stderr, exit 5.
fn canceled(ctx: &mut Ctx, resp: pb::WatchResponse) -> CliResult {
    // clientv3's `WatchResponse.Err()`: a compact revision means compaction, whatever the
    // server's reason says.
    let reason = if resp.compact_revision != 0 {
        "etcdserver: mvcc: required revision has been compacted".to_string()
    } else {
        resp.cancel_reason.clone()
    };
    if ctx.printer.format() == Format::Json {
        ctx.printer.set_server(ids(resp.header.as_ref()));
        ctx.printer.watch(&convert::watch_response(resp))?;
        ctx.printer.flush()?;
    }
    eprintln!("watch was canceled ({reason})");
    Err(CliError::interrupted("watch is canceled by the server"))
}

/// `watch -- COMMAND`: once per event, with etcdctl's variables (the revision is the
/// response's header revision, as etcdctl sets it).
fn run_hook(command: &[String], revision: i64, resp: &etch::WatchResponse) -> CliResult {
    for ev in &resp.events {
        let kind = match ev.kind {
            EventKind::Put => "PUT",
            EventKind::Delete => "DELETE",
        };
        let env = [
            ("ETCD_WATCH_REVISION", revision.to_string()),
            ("ETCD_WATCH_EVENT_TYPE", go_quote(kind.as_bytes())),
            ("ETCD_WATCH_KEY", go_quote(&ev.kv.key)),
            ("ETCD_WATCH_VALUE", go_quote(&ev.kv.value)),
        ];
        let status = child::run(command, &env)?;
        if !status.success() {
            return Err(CliError::failed(format!(
                "command {command:?} error ({status})"
            )));
        }
    }
    Ok(())
}
