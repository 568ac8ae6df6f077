//! `etch-bench`: measures etch against redb, LMDB (heed), SQLite (rusqlite, bundled) and fjall
//! in one process, one engine after another, and prints each figure with its ratio to etch.
//!
//! ```text
//! cargo run --release -p etch-bench -- compare [--scale small|full] [--json FILE]
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
//! * remove half: N/2 loaded keys removed in one transaction;
//! * sizes on disk after the load, after the removal, and after each engine's own compaction
//!   (etch: `compact` + `defrag`; redb: `compact`; LMDB: size of a compacting copy; SQLite:
//!   `VACUUM`; fjall: major compaction).
//!
//! Fairness: the data come from one deterministic xorshift generator, so every engine writes and
//! reads the same bytes in the same order; every write transaction is durable when it returns
//! (etch `Durability::Immediate`, redb `Durability::Immediate`, LMDB default sync flags, SQLite
//! WAL with `synchronous=FULL`, fjall `PersistMode::SyncAll` per batch); every engine starts in a
//! fresh temporary directory under the current directory (so all use the same file system); the
//! reads run right after the writes, so the OS page cache is warm for every engine alike. Caches
//! inside the engines keep their defaults. The reads' checksums (value bytes, range entries)
//! must agree between engines, otherwise the run fails.
//!
//! Not measured yet: group commit (concurrent writers) and peak RSS.

mod engines;
mod workload;

use std::time::Instant;

use engines::Engine;
use workload::{Data, Scale, Unit, ROWS};

fn usage() -> ! {
    eprintln!("usage: etch-bench compare [--scale small|full] [--json FILE]");
    std::process::exit(2)
}

struct Args {
    scale: Scale,
    json: Option<String>,
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("compare") {
        usage();
    }
    let mut parsed = Args {
        scale: Scale::FULL,
        json: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--scale" => {
                parsed.scale = match args.next().as_deref() {
                    Some("small") => Scale::SMALL,
                    Some("full") => Scale::FULL,
                    _ => usage(),
                }
            }
            "--json" => parsed.json = Some(args.next().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    parsed
}

/// Total memory in bytes from `/proc/meminfo`, if readable.
fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn format_value(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Millis if value >= 10_000.0 => format!("{:.1}s", value / 1e3),
        Unit::Millis => format!("{value:.0}ms"),
        Unit::Bytes => format!("{:.1}MiB", value / (1024.0 * 1024.0)),
    }
}

fn main() {
    let args = parse_args();
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
    let data = Data::generate(&scale);
    let max_ops = scale.keys.max(scale.batch_size);

    // One engine at a time, each in its own fresh directory, removed before the next starts.
    type Opener = fn(&std::path::Path, usize) -> Box<dyn Engine>;
    let openers: [(&str, Opener); 5] = [
        ("etch", |d, n| Box::new(engines::etch::Etch::open(d, n))),
        ("redb", |d, _| Box::new(engines::redb::Redb::open(d))),
        ("lmdb", |d, _| Box::new(engines::lmdb::Lmdb::open(d))),
        ("sqlite", |d, _| Box::new(engines::sqlite::Sqlite::open(d))),
        ("fjall", |d, _| Box::new(engines::fjall::Fjall::open(d))),
    ];
    let mut outcomes = Vec::new();
    for (name, open) in openers {
        let dir = tempfile::tempdir_in(".").expect("create temporary directory");
        let engine_started = Instant::now();
        let mut engine = open(dir.path(), max_ops);
        assert_eq!(engine.name(), name);
        let outcome = workload::run(engine.as_mut(), &data, |step| {
            eprintln!(
                "  [{name}] {step} done at {:.1}s",
                engine_started.elapsed().as_secs_f64()
            );
        });
        drop(engine);
        dir.close().expect("remove temporary directory");
        outcomes.push((name, outcome));
    }

    let (_, reference) = &outcomes[0];
    for (name, outcome) in &outcomes {
        assert_eq!(
            (outcome.read_bytes, outcome.range_entries),
            (reference.read_bytes, reference.range_entries),
            "{name} read different data than etch"
        );
    }

    print_table(&outcomes);
    for (name, outcome) in &outcomes {
        println!("compaction of {name}: {}", outcome.compaction);
    }
    println!(
        "ratio = engine / etch (above 1: slower or bigger than etch); total {:.1}s",
        started.elapsed().as_secs_f64()
    );

    if let Some(path) = args.json {
        write_json(&path, cores, memory, &scale, &outcomes);
    }
}

fn print_table(outcomes: &[(&str, workload::Outcome)]) {
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

fn write_json(
    path: &str,
    cores: usize,
    memory: Option<u64>,
    scale: &Scale,
    outcomes: &[(&str, workload::Outcome)],
) {
    let mut results = serde_json::Map::new();
    for (row, (key, _, unit)) in ROWS.iter().enumerate() {
        let mut per_engine = serde_json::Map::new();
        for (name, outcome) in outcomes {
            let value = outcome.values[row];
            let value = match unit {
                Unit::Millis => serde_json::json!(value),
                Unit::Bytes => serde_json::json!(value as u64),
            };
            per_engine.insert(name.to_string(), value);
        }
        let key = match unit {
            Unit::Millis => format!("{key}_ms"),
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
    });
    let text = serde_json::to_string_pretty(&doc).expect("serialize results");
    std::fs::write(path, text + "\n").expect("write JSON results");
}
