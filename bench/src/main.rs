//! `etch-bench`: measures etch against redb, LMDB (heed), SQLite (rusqlite, bundled) and fjall
//! in one process, one engine after another, and prints each figure with its ratio to etch.
//! `etch-bench server` measures `etch serve` against etcd 3.4 instead (see `server/mod.rs`);
//! `etch-bench raft` measures the cost of consensus: a 3-member cluster against one store (see
//! `raft.rs`).
//!
//! ```text
//! cargo run --release -p etch-bench -- compare [--scale small|full] [--json FILE]
//!                                              [--engines etch,redb,lmdb,sqlite,fjall]
//! cargo run --release -p etch-bench -- server [--scale small|full] [--json FILE] [--only kv|watch]
//!                                             [--requests N] [--connections N] [--markdown]
//! cargo run --release -p etch-bench -- scale [--max-keys N] [--step N] [--puts N] [--quick]   (see scale.rs)
//! cargo run --release -p etch-bench -- reads [--sizes N,...] [--rounds N] [--quick]  (see reads.rs)
//! cargo run --release -p etch-bench -- raft [--quick] [--seconds S] [--max-writes N]
//! cargo run --release -p etch-bench -- cluster [--quick] [--json FILE]   (see cluster/mod.rs)
//! ```
//!
//! Workloads follow the shape of redb's published benchmark, scaled to a 2-core machine: 24-byte
//! random keys and 150-byte random values, N keys (`full`: 1,000,000; `small`: 50,000).
//!
//! * bulk load: N keys in one write transaction;
//! * individual writes: 1,000 (small: 200) transactions of one new key each;
//! * batch writes: 100 (small: 20) transactions of 1,000 new keys each;
//! * random reads: the N loaded keys in random order, on 1 thread and then split over 2 threads;
//! * range reads: 500,000 (small: 20,000) reads of a `[start, end)` range spanning about 10 keys,
//!   returning at most 10 entries (a bounded range, because etch counts every key of a range as
//!   etcd does, so an unbounded range with a limit would not be the same work);
//! * durable commits from 1, 4 and 16 threads: 4,000 (small: 480) new keys per row, one key per
//!   commit, split evenly over the threads; reported as wall-clock microseconds per commit;
//! * open: close cleanly (not timed), then open the N-key file again and read one key;
//! * remove half: N/2 loaded keys removed in one transaction;
//! * sizes on disk after the load, after the removal, and after each engine's own compaction
//!   (etch: `compact` + `defrag`; redb: `compact`; LMDB: size of a compacting copy; SQLite:
//!   `VACUUM`; fjall: major compaction).
//!
//! * peak RSS of the process that ran the engine (`VmHWM`; for the engines that read through a
//!   memory map, etch and LMDB, it counts the mapped file pages they touched);
//! * outside the table: the physical floor (`append 4 KiB + fdatasync`, and `pwrite` into a
//!   preallocated file + `fdatasync`, as many times as there are individual writes) and etch's
//!   WAL replay rate (a child process commits batches of 100 keys and exits without closing;
//!   the time of the next `Store::open`, which replays and checkpoints them).
//!
//! Fairness: the data come from one deterministic xorshift generator, so every engine writes and
//! reads the same bytes in the same order; every write transaction is durable when it returns
//! (etch `Durability::Immediate`, redb `Durability::Immediate`, LMDB default sync flags, SQLite
//! WAL with `synchronous=FULL`, fjall `PersistMode::SyncAll` per batch); every engine starts in a
//! fresh temporary directory under the current directory (so all use the same file system) and
//! in its own child process (so neither heap nor engine caches leak from one to the next, and
//! peak RSS is the engine's own); the reads run right after the writes and a clean reopen, so the
//! OS page cache is warm for every engine alike. Caches inside the engines keep their defaults.
//! The reads' checksums (value bytes, range entries) must agree between engines, otherwise the
//! run fails.

mod cluster;
mod engines;
mod floor;
mod raft;
mod reads;
mod scale;
mod server;
mod workload;

use std::process::Command;
use std::time::Instant;

use workload::{Data, Outcome, Scale, Unit, PEAK_RSS_ROW, ROWS};

fn usage() -> ! {
    eprintln!(
        "usage: etch-bench compare [--scale small|full] [--json FILE] [--engines a,b,...]\n\
         \x20      etch-bench server [--scale small|full] [--json FILE] [--only kv|watch]\n\
         \x20                        [--requests N] [--connections N] [--markdown]\n\
         \x20      etch-bench scale [--max-keys N] [--step N] [--puts N] [--quick] [--engines etch,lmdb]\n\
         \x20      etch-bench reads [--sizes N,N,...] [--rounds N] [--reads N] [--quick]\n\
         \x20      etch-bench raft [--quick] [--seconds S] [--max-writes N]\n\
         \x20      etch-bench cluster [--quick] [--json FILE] [--catch-up-keys N] [--rounds N]\n\
         engines: {}",
        engines::NAMES.join(",")
    );
    std::process::exit(2)
}

struct Args {
    scale: Scale,
    json: Option<String>,
    engines: Vec<String>,
}

fn parse_scale(name: Option<&str>) -> Scale {
    match name {
        Some("small") => Scale::SMALL,
        Some("full") => Scale::FULL,
        _ => usage(),
    }
}

fn parse_compare(mut args: impl Iterator<Item = String>) -> Args {
    let mut parsed = Args {
        scale: Scale::FULL,
        json: None,
        engines: engines::NAMES.iter().map(|s| s.to_string()).collect(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--scale" => parsed.scale = parse_scale(args.next().as_deref()),
            "--json" => parsed.json = Some(args.next().unwrap_or_else(|| usage())),
            "--engines" => {
                let list = args.next().unwrap_or_else(|| usage());
                parsed.engines = list.split(',').map(str::to_string).collect();
                if parsed
                    .engines
                    .iter()
                    .any(|e| !engines::NAMES.contains(&e.as_str()))
                {
                    usage();
                }
            }
            _ => usage(),
        }
    }
    parsed
}

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("compare") => compare(parse_compare(args)),
        Some("server") => server::main(args),
        Some("cluster") => cluster::main(args),
        Some("scale") => scale::main(args),
        Some("reads") => reads::main(args),
        // Internal: one engine's scale run (see scale.rs).
        Some("scale-engine") => scale::engine_main(args),
        Some("raft") => raft::main(args),
        // Internal: run one engine in this process and print its outcome as JSON.
        Some("run-engine") => {
            let name = args.next().unwrap_or_else(|| usage());
            let scale = parse_scale(args.next().as_deref());
            run_engine(&name, scale)
        }
        // Internal: leave a store with acknowledged records in its WAL (see floor.rs).
        Some("wal-writer") => {
            let path = args.next().unwrap_or_else(|| usage());
            let batches = args
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| usage());
            floor::wal_writer(std::path::Path::new(&path), batches)
        }
        _ => usage(),
    }
}

/// Total memory in bytes from `/proc/meminfo`, if readable.
fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// This process's peak resident set size in bytes (`VmHWM`), if readable.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn format_value(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Millis if value >= 10_000.0 => format!("{:.1}s", value / 1e3),
        Unit::Millis if value >= 10.0 => format!("{value:.0}ms"),
        Unit::Millis => format!("{value:.2}ms"),
        Unit::MicrosPerCommit => format!("{value:.0}us"),
        Unit::Bytes => format!("{:.1}MiB", value / (1024.0 * 1024.0)),
    }
}

/// Runs every workload against engine `name` in a fresh directory under the current one and
/// prints the [`Outcome`] as one JSON line on stdout (progress goes to stderr).
fn run_engine(name: &str, scale: Scale) {
    let data = Data::generate(&scale);
    let max_ops = scale.keys.max(scale.batch_size);
    let dir = tempfile::tempdir_in(".").expect("create temporary directory");
    let started = Instant::now();
    let mut engine = engines::open(name, dir.path(), max_ops).unwrap_or_else(|| usage());
    assert_eq!(engine.name(), name);
    let (heap, mapped) = scale::rss_split();
    eprintln!(
        "  [{name}] opened, data generated (heap {:.0} MiB, mapped {:.0} MiB, peak so far {:.0} MiB)",
        scale::mib(heap),
        scale::mib(mapped),
        scale::mib(scale::peak_rss()),
    );
    let mut outcome = workload::run(engine.as_mut(), &data, |step| {
        // Resident memory after each step, and the process's peak so far, so that the peak
        // RSS row can be traced to the step that set it (heap = anonymous memory, which
        // includes the harness's generated data; mapped = file pages read through a map).
        let (heap, mapped) = scale::rss_split();
        eprintln!(
            "  [{name}] {step} done at {:.1}s (heap {:.0} MiB, mapped {:.0} MiB, peak so far {:.0} MiB)",
            started.elapsed().as_secs_f64(),
            scale::mib(heap),
            scale::mib(mapped),
            scale::mib(scale::peak_rss()),
        );
    });
    drop(engine);
    dir.close().expect("remove temporary directory");
    outcome.values[PEAK_RSS_ROW] = peak_rss().unwrap_or(0) as f64;
    println!(
        "{}",
        serde_json::to_string(&outcome).expect("serialize outcome")
    );
}

/// Runs `name` in a child process (see [`run_engine`]) and parses its outcome.
fn spawn_engine(name: &str, scale: &Scale) -> Outcome {
    let exe = std::env::current_exe().expect("locate etch-bench executable");
    let out = Command::new(exe)
        .args(["run-engine", name, scale.name])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run engine process");
    assert!(out.status.success(), "{name} run failed: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .last()
        .expect("engine process printed its outcome");
    serde_json::from_str(line).expect("parse engine outcome")
}

/// The physical floor and etch's WAL replay, measured in this process's own directory.
struct Extras {
    append_ms: f64,
    overwrite_ms: f64,
    replay: floor::Replay,
}

fn measure_extras(scale: &Scale) -> Extras {
    let dir = tempfile::tempdir_in(".").expect("create temporary directory");
    let append_ms = floor::append_fdatasync_ms(dir.path(), scale.individual_writes);
    let overwrite_ms = floor::overwrite_fdatasync_ms(dir.path(), scale.individual_writes);
    let replay = floor::wal_replay(dir.path(), scale.keys / 1000);
    dir.close().expect("remove temporary directory");
    Extras {
        append_ms,
        overwrite_ms,
        replay,
    }
}

fn compare(args: Args) {
    let scale = args.scale;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = total_memory();
    println!(
        "etch-bench compare: scale {} ({} keys, {}-byte keys, {}-byte values)",
        scale.name,
        scale.keys,
        workload::KEY_LEN,
        workload::VALUE_LEN
    );
    println!(
        "machine: {cores} cores, {} memory, {} {}",
        memory.map_or("unknown".to_string(), |m| format!(
            "{:.1} GiB",
            m as f64 / (1u64 << 30) as f64
        )),
        std::env::consts::OS,
        std::env::consts::ARCH
    );

    let started = Instant::now();
    let extras = measure_extras(&scale);
    let outcomes: Vec<(&str, Outcome)> = args
        .engines
        .iter()
        .map(|name| {
            let name = engines::NAMES
                .iter()
                .find(|n| **n == name.as_str())
                .expect("engine names were validated");
            (*name, spawn_engine(name, &scale))
        })
        .collect();

    let (_, reference) = &outcomes[0];
    for (name, outcome) in &outcomes {
        assert_eq!(
            (outcome.read_bytes, outcome.range_entries),
            (reference.read_bytes, reference.range_entries),
            "{name} read different data than {}",
            outcomes[0].0
        );
    }

    print_table(&outcomes);
    print_extras(&extras, &scale, &outcomes);
    for (name, outcome) in &outcomes {
        println!("compaction of {name}: {}", outcome.compaction);
    }
    println!(
        "ratio = engine / {} (above 1: slower or bigger); total {:.1}s",
        outcomes[0].0,
        started.elapsed().as_secs_f64()
    );

    if let Some(path) = args.json {
        write_json(&path, cores, memory, &scale, &extras, &outcomes);
    }
}

fn print_table(outcomes: &[(&str, Outcome)]) {
    let label_width = ROWS.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let cell_width = 18;
    print!("\n{:label_width$}", "workload");
    for (name, _) in outcomes {
        print!(" | {name:>cell_width$}");
    }
    println!();
    println!(
        "{}",
        "-".repeat(label_width + outcomes.len() * (cell_width + 3))
    );
    for (row, (_, label, unit)) in ROWS.iter().enumerate() {
        print!("{label:label_width$}");
        let base = outcomes[0].1.values[row];
        for (_, outcome) in outcomes {
            let value = outcome.values[row];
            let cell = format!("{} ({:.2}x)", format_value(*unit, value), value / base);
            print!(" | {cell:>cell_width$}");
        }
        println!();
    }
    println!();
}

/// Index of row `key` in [`ROWS`].
fn row(key: &str) -> usize {
    ROWS.iter().position(|r| r.0 == key).expect("row exists")
}

fn print_extras(extras: &Extras, scale: &Scale, outcomes: &[(&str, Outcome)]) {
    println!(
        "floor: append 4 KiB + fdatasync {:.3} ms; pwrite into preallocated file + fdatasync {:.3} ms",
        extras.append_ms, extras.overwrite_ms
    );
    for (name, outcome) in outcomes {
        let per_write = outcome.values[row("individual_writes")] / scale.individual_writes as f64;
        let one = outcome.values[row("commit_1t")];
        let sixteen = outcome.values[row("commit_16t")];
        println!(
            "{name}: individual write {per_write:.3} ms = {:.2}x the append floor; \
             16 threads commit {:.2}x the 1-thread rate",
            per_write / extras.append_ms,
            one / sixteen
        );
    }
    let r = &extras.replay;
    println!(
        "etch WAL replay: {} records ({:.1} MiB) replayed and checkpointed by open in {:.0} ms \
         = {:.0} records/s, {:.0} MiB/s",
        r.records,
        r.wal_bytes as f64 / (1 << 20) as f64,
        r.open_ms,
        r.records as f64 / (r.open_ms / 1e3),
        r.wal_bytes as f64 / (1 << 20) as f64 / (r.open_ms / 1e3)
    );
}

fn write_json(
    path: &str,
    cores: usize,
    memory: Option<u64>,
    scale: &Scale,
    extras: &Extras,
    outcomes: &[(&str, Outcome)],
) {
    let mut results = serde_json::Map::new();
    for (row, (key, _, unit)) in ROWS.iter().enumerate() {
        let mut per_engine = serde_json::Map::new();
        for (name, outcome) in outcomes {
            let value = outcome.values[row];
            let value = match unit {
                Unit::Millis | Unit::MicrosPerCommit => serde_json::json!(value),
                Unit::Bytes => serde_json::json!(value as u64),
            };
            per_engine.insert(name.to_string(), value);
        }
        let key = match unit {
            Unit::Millis => format!("{key}_ms"),
            Unit::MicrosPerCommit => format!("{key}_us_per_commit"),
            Unit::Bytes => format!("{key}_bytes"),
        };
        results.insert(key, serde_json::Value::Object(per_engine));
    }
    let doc = serde_json::json!({
        "machine": {
            "cores": cores,
            "memory_bytes": memory,
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        },
        "scale": scale.name,
        "results": results,
        "floor": {
            "append_4k_fdatasync_ms": extras.append_ms,
            "pwrite_preallocated_fdatasync_ms": extras.overwrite_ms,
        },
        "etch_wal_replay": {
            "records": extras.replay.records,
            "wal_bytes": extras.replay.wal_bytes,
            "open_ms": extras.replay.open_ms,
        },
    });
    let text = serde_json::to_string_pretty(&doc).expect("serialize results");
    std::fs::write(path, text + "\n").expect("write JSON results");
}
