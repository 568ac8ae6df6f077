//! Open options: keyword arguments of `etch.open` onto the engine's `Options` builder.

use std::time::Duration;

use etch_engine::{AutoCompaction, Durability, Options};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::FOREVER;
use crate::errors::InvalidOptionError;

/// The engine options plus the figures the bindings need to know themselves.
pub struct OpenOptions {
    /// The builder handed to the engine.
    pub options: Options,
    /// Compares and operations allowed in one transaction (for optimistic writes).
    pub max_txn_ops: usize,
    /// Longest key (for reads at a past revision, which refuse a longer key as `get` does).
    pub max_key_size: usize,
    /// How often an optimistic write runs before giving up.
    pub write_attempts: u32,
}

/// The option names `etch.open` accepts.
pub const NAMES: &[&str] = &[
    "durability",
    "page_size",
    "relaxed_sync_interval",
    "max_key_size",
    "max_request_bytes",
    "max_txn_ops",
    "wal_capacity",
    "checkpoint_interval",
    "checkpoint_wal_fraction",
    "random_access",
    "write_attempts",
    "auto_compaction_mode",
    "auto_compaction_retention",
    "quota_bytes",
];

/// Parses the keyword arguments. Unknown names are a `TypeError`, bad values an
/// `InvalidOptionError` (range checks are the engine's, at open).
pub fn parse(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<OpenOptions> {
    let mut o = Options::new();
    // The engine's defaults, for the options the bindings check themselves.
    let (mut max_txn_ops, mut write_attempts, mut max_key_size) = (128usize, 16u32, 960usize);
    let (mut mode, mut retention): (Option<String>, Option<f64>) = (None, None);
    if let Some(kwargs) = kwargs {
        for (k, v) in kwargs.iter() {
            let name: String = k.extract()?;
            o = match name.as_str() {
                "durability" => o.durability(durability(&v.extract::<String>()?)?),
                "page_size" => o.page_size(v.extract()?),
                "relaxed_sync_interval" => o.relaxed_sync_interval(seconds(&v)?),
                "max_key_size" => {
                    max_key_size = v.extract()?;
                    o.max_key_size(max_key_size)
                }
                "max_request_bytes" => o.max_request_bytes(v.extract()?),
                "max_txn_ops" => {
                    max_txn_ops = v.extract()?;
                    o.max_txn_ops(max_txn_ops)
                }
                "wal_capacity" => o.wal_capacity(v.extract()?),
                "checkpoint_interval" => o.checkpoint_interval(seconds(&v)?),
                "checkpoint_wal_fraction" => o.checkpoint_wal_fraction(v.extract()?),
                "random_access" => o.random_access(v.extract()?),
                "write_attempts" => {
                    write_attempts = v.extract()?;
                    o.write_attempts(write_attempts)
                }
                "auto_compaction_mode" => {
                    mode = Some(v.extract()?);
                    o
                }
                "auto_compaction_retention" => {
                    retention = Some(v.extract()?);
                    o
                }
                "quota_bytes" => o.quota_bytes(v.extract::<Option<u64>>()?),
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "unknown option {other:?}; the options are: {}",
                        NAMES.join(", ")
                    )))
                }
            };
        }
    }
    if mode.is_some() || retention.is_some() {
        o = o.auto_compaction(auto_compaction(mode.as_deref(), retention)?);
    }
    Ok(OpenOptions {
        options: o,
        max_txn_ops,
        max_key_size,
        write_attempts,
    })
}

fn durability(name: &str) -> PyResult<Durability> {
    match name {
        "immediate" => Ok(Durability::Immediate),
        "relaxed" => Ok(Durability::Relaxed),
        other => Err(InvalidOptionError::new_err(format!(
            "durability must be \"immediate\" or \"relaxed\", not {other:?}"
        ))),
    }
}

/// A duration in seconds (int or float, from 0 to a century).
fn seconds(v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    duration(v.extract()?)
}

fn duration(secs: f64) -> PyResult<Duration> {
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= FOREVER => Ok(d),
        _ => Err(InvalidOptionError::new_err(format!(
            "{secs} is not a number of seconds between 0 and a century"
        ))),
    }
}

/// etcd's `--auto-compaction-mode` (`"revision"`, `"periodic"`, or `"off"`) and
/// `--auto-compaction-retention` (revisions to keep, or seconds of history).
fn auto_compaction(mode: Option<&str>, retention: Option<f64>) -> PyResult<AutoCompaction> {
    match (mode.unwrap_or("revision"), retention) {
        ("off", _) => Ok(AutoCompaction::Off),
        ("revision", Some(n)) if n >= 1.0 && n.fract() == 0.0 => {
            Ok(AutoCompaction::Revisions(n as u64))
        }
        ("periodic", Some(s)) if s > 0.0 => duration(s).map(AutoCompaction::Periodic),
        (m @ ("revision" | "periodic"), r) => {
            Err(InvalidOptionError::new_err(format!(
            "auto_compaction_mode {m:?} needs auto_compaction_retention (a positive {}), got {r:?}",
            if m == "revision" { "whole number of revisions" } else { "number of seconds" }
        )))
        }
        (m, _) => Err(InvalidOptionError::new_err(format!(
            "auto_compaction_mode must be \"revision\", \"periodic\" or \"off\", not {m:?}"
        ))),
    }
}
