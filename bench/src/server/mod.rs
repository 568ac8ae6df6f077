//! `etch-bench server`: drives real etcd 3.4 and `etch serve` in the same run with the project's
//! generated gRPC client and prints both, with etch/etcd ratios.
//!
//! ```text
//! cargo build --release -p etch-cli -p etch-bench
//! target/release/etch-bench server [--scale small|full] [--json FILE] [--only kv|watch]
//!                                  [--requests N] [--connections N] [--markdown]
//! ```
//!
//! `--requests N` sets the requests of each KV row at 64 and 256 clients (N/10 at 1 client)
//! instead of the scale's; `--connections N` makes every KV row use N connections (at most one
//! per client) instead of `clients / 8`; `--markdown` also prints the KV rows as a Markdown
//! table with the ratios, ready for docs/benchmarks.md; `--only` runs one half.
//!
//! * KV: puts of 256-byte values, linearizable and serializable single-key gets, each at 1, 64
//!   and 256 clients (closed loop; the clients share `clients / 8` connections, at least one).
//!   Both servers run side by side and every row is measured on etcd and then on etch, so a
//!   change in the machine's load hits both alike. Gets read keys prefilled before the rows.
//! * Watch fan-out, on a fresh server per shape: watchers on distinct keys, and on one shared
//!   prefix, spread over 100 streams on 10 connections, while 64 clients put at full rate;
//!   delivery latency, the server's memory (`/proc/PID/status`), and put throughput with the
//!   watchers as a fraction of the same puts without.
//!
//! etcd is `/usr/bin/etcd` (or `ETCD_BIN`), etch is `etch` next to this executable (or
//! `ETCH_BIN`); both run in temporary directories under the current directory, on free
//! loopback ports, and are killed by pid when the run ends or fails.

pub(crate) mod kv_rows;
pub(crate) mod load;
pub(crate) mod process;
mod watch;

use std::time::{Duration, Instant};

use kv_rows::{KvRow, KvScale, CLIENTS};
use load::Op;
use process::{Kind, Server};
use watch::{FanOut, FanOutResult, Shape};

/// The sizes of a run.
#[derive(Clone, Copy, Debug)]
struct Scale {
    name: &'static str,
    kv: KvScale,
    /// Watch fan-out on distinct keys.
    distinct: FanOut,
    /// Watch fan-out on one shared prefix (each put is delivered to every watcher).
    shared: FanOut,
}

const SMALL: Scale = Scale {
    name: "small",
    kv: KvScale {
        keys: 1_000,
        single: (100, 200),
        many: (2_000, 5_000),
    },
    distinct: FanOut {
        watchers: 1_000,
        streams: 100,
        connections: 10,
        put_clients: 64,
        puts: 1_000,
        drain_timeout: Duration::from_secs(10),
    },
    shared: FanOut {
        watchers: 1_000,
        streams: 100,
        connections: 10,
        put_clients: 64,
        puts: 50,
        drain_timeout: Duration::from_secs(10),
    },
};

const FULL: Scale = Scale {
    name: "full",
    kv: KvScale {
        keys: 10_000,
        single: (2_000, 10_000),
        many: (20_000, 50_000),
    },
    distinct: FanOut {
        watchers: 10_000,
        streams: 100,
        connections: 10,
        put_clients: 64,
        puts: 10_000,
        drain_timeout: Duration::from_secs(60),
    },
    shared: FanOut {
        watchers: 10_000,
        streams: 100,
        connections: 10,
        put_clients: 64,
        puts: 200,
        drain_timeout: Duration::from_secs(90),
    },
};

fn usage() -> ! {
    eprintln!(
        "usage: etch-bench server [--scale small|full] [--json FILE] [--only kv|watch]\n\
         \x20                        [--requests N] [--connections N] [--markdown]"
    );
    std::process::exit(2)
}

/// What a run does besides the scale.
#[derive(Clone, Debug, Default)]
struct Options {
    json: Option<String>,
    /// Connections of every KV row, instead of `clients / 8`.
    connections: Option<usize>,
    markdown: bool,
    kv: bool,
    watch: bool,
}

fn number(arg: Option<String>) -> u64 {
    arg.and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| usage())
}

/// Entry point of `etch-bench server ARGS`.
pub fn main(mut args: impl Iterator<Item = String>) {
    let mut scale = FULL;
    let mut requests = None;
    let mut options = Options {
        kv: true,
        watch: true,
        ..Options::default()
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--scale" => {
                scale = match args.next().as_deref() {
                    Some("small") => SMALL,
                    Some("full") => FULL,
                    _ => usage(),
                }
            }
            "--json" => options.json = Some(args.next().unwrap_or_else(|| usage())),
            "--requests" => requests = Some(number(args.next())),
            "--connections" => options.connections = Some(number(args.next()) as usize),
            "--markdown" => options.markdown = true,
            "--only" => match args.next().as_deref() {
                Some("kv") => options.watch = false,
                Some("watch") => options.kv = false,
                _ => usage(),
            },
            _ => usage(),
        }
    }
    if let Some(n) = requests {
        scale.kv.many = (n, n);
        scale.kv.single = ((n / 10).max(1), (n / 10).max(1));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start tokio runtime");
    if let Err(e) = runtime.block_on(run(scale, options)) {
        eprintln!("etch-bench server: {e}");
        std::process::exit(1);
    }
}

async fn run(scale: Scale, options: Options) -> Result<(), String> {
    let started = Instant::now();
    let etcd_version = process::check_binaries()?;
    let floor_ms = {
        let dir = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
        crate::floor::append_fdatasync_ms(dir.path(), 200)
    };
    println!(
        "etch-bench server: scale {}, {etcd_version}, {}-byte values",
        scale.name,
        load::VALUE_LEN
    );
    println!("floor: append 4 KiB + fdatasync {floor_ms:.3} ms per write");

    let rows = if options.kv {
        measure_kv(&scale.kv, options.connections).await?
    } else {
        Vec::new()
    };
    print_kv(&rows);
    if options.markdown {
        print_kv_markdown(&rows);
    }

    let mut fan_outs = Vec::new();
    let shapes = if options.watch {
        vec![
            (Shape::DistinctKeys, scale.distinct),
            (Shape::SharedPrefix, scale.shared),
        ]
    } else {
        Vec::new()
    };
    for (shape, size) in shapes {
        for kind in [Kind::Etcd, Kind::Etch] {
            eprintln!("  watch {} on {}", shape.name(), kind.name());
            fan_outs.push((kind.name(), watch::run(kind, shape, size).await?));
        }
    }
    print_watch(&fan_outs);
    println!("total {:.1}s", started.elapsed().as_secs_f64());

    if let Some(path) = options.json {
        let watch: Vec<_> = fan_outs
            .iter()
            .map(|(server, result)| serde_json::json!({ "server": server, "result": result }))
            .collect();
        let doc = serde_json::json!({
            "scale": scale.name,
            "etcd_version": etcd_version,
            "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "append_fdatasync_floor_ms": floor_ms,
            "kv": rows,
            "watch": watch,
        });
        process::write_json(&path, &doc)?;
    }
    Ok(())
}

/// Every KV row, etcd then etch for each, on one server of each kind.
async fn measure_kv(scale: &KvScale, connections: Option<usize>) -> Result<Vec<KvRow>, String> {
    let etcd = Server::start(Kind::Etcd).await?;
    let etch = Server::start(Kind::Etch).await?;
    let connections_for =
        |clients: usize| connections.unwrap_or(clients.div_ceil(8)).clamp(1, clients);
    let max_connections = CLIENTS
        .iter()
        .map(|&c| connections_for(c))
        .max()
        .unwrap_or(1);
    let target = kv_rows::target(scale);
    let mut deployments = Vec::new();
    for server in [&etcd, &etch] {
        let channels = server.connect(max_connections).await?;
        load::prefill(&channels[0], &target).await?;
        deployments.push((server.kind, channels));
    }
    let deployments: [_; 2] = deployments.try_into().expect("two servers");
    kv_rows::run(scale, &target, &Op::ALL, &deployments, connections_for).await
}

fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}ms", us as f64 / 1e3)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0}MiB", bytes as f64 / (1 << 20) as f64)
}

/// Whether a row meets the issue's targets: at 64 and 256 clients at least 3x etcd's
/// throughput and at most half its p99; at 1 client a lower median latency than etcd's.
fn verdict(row: &KvRow) -> &'static str {
    let met = if row.clients == 1 {
        row.etch.p50_us < row.etcd.p50_us
    } else {
        row.etch.throughput >= 3.0 * row.etcd.throughput
            && row.etch.p99_us as f64 <= 0.5 * row.etcd.p99_us as f64
    };
    if met {
        "met"
    } else {
        "not met"
    }
}

fn print_kv(rows: &[KvRow]) {
    println!(
        "\n{:<17} {:>7} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>6} {:>6} {:>6} | target",
        "kv",
        "clients",
        "etcd op/s",
        "p50",
        "p99",
        "etch op/s",
        "p50",
        "p99",
        "thr x",
        "p50 x",
        "p99 x"
    );
    println!("{}", "-".repeat(120));
    for row in rows {
        println!(
            "{:<17} {:>7} | {:>9.0} {:>8} {:>8} | {:>9.0} {:>8} {:>8} | {:>6.2} {:>6.2} {:>6.2} | {}",
            row.op,
            row.clients,
            row.etcd.throughput,
            micros(row.etcd.p50_us),
            micros(row.etcd.p99_us),
            row.etch.throughput,
            micros(row.etch.p50_us),
            micros(row.etch.p99_us),
            row.etch.throughput / row.etcd.throughput,
            row.etch.p50_us as f64 / row.etcd.p50_us as f64,
            row.etch.p99_us as f64 / row.etcd.p99_us as f64,
            verdict(row),
        );
    }
    println!(
        "ratios: etch / etcd (thr x above 1: etch faster; p50 x and p99 x below 1: etch faster)"
    );
}

/// The KV rows as a Markdown table (what `etch-serve-bench` printed before it was folded in).
fn print_kv_markdown(rows: &[KvRow]) {
    println!("\n| operation | clients | etcd op/s | etch op/s | ratio | etcd p50 ms | etch p50 ms | etcd p99 ms | etch p99 ms | p99 ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2}x | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} |",
            row.op,
            row.clients,
            row.etcd.throughput,
            row.etch.throughput,
            row.etch.throughput / row.etcd.throughput,
            row.etcd.p50_us as f64 / 1e3,
            row.etch.p50_us as f64 / 1e3,
            row.etcd.p99_us as f64 / 1e3,
            row.etch.p99_us as f64 / 1e3,
            row.etch.p99_us as f64 / row.etcd.p99_us as f64,
        );
    }
}

fn print_watch(results: &[(&str, FanOutResult)]) {
    println!(
        "\n{:<14} {:>6} {:>8} | {:>9} {:>9} {:>6} | {:>8} {:>8} {:>17} {:>7} | {:>7} {:>8} {:>7} {:>7}",
        "watch",
        "server",
        "watchers",
        "put/s w/o",
        "put/s w/",
        "frac",
        "dlv p50",
        "dlv p99",
        "delivered/expect",
        "drain",
        "RSS 0",
        "RSS +w",
        "RSS end",
        "HWM"
    );
    println!("{}", "-".repeat(140));
    for (server, r) in results {
        println!(
            "{:<14} {:>6} {:>8} | {:>9.0} {:>9.0} {:>6.2} | {:>8} {:>8} {:>17} {:>6.1}s | {:>7} {:>8} {:>7} {:>7}",
            r.shape,
            server,
            r.watchers,
            r.puts_without_watchers.throughput,
            r.puts_with_watchers.throughput,
            r.throughput_fraction,
            micros(r.delivery_p50_us),
            micros(r.delivery_p99_us),
            format!("{}/{}", r.events_delivered, r.events_expected),
            r.drain_seconds,
            mib(r.memory_at_start.rss),
            mib(r.memory_with_watchers.rss),
            mib(r.memory_at_end.rss),
            mib(r.memory_at_end.hwm),
        );
    }
    println!(
        "frac: put throughput with the watchers / without (target at least 0.80); dlv: put sent \
         to event received; drain: last put response to last event (or the timeout)"
    );
}
