//! From parsed arguments to engine requests, shared by the top-level commands and by the
//! requests inside `txn`, so both accept exactly the same flags with the same meaning.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use etch::{PutOp, Range, RangeOptions, SortOrder, SortTarget};

use crate::args::{DelArgs, GetArgs, Order, PutArgs, SortBy};
use crate::error::{CliError, CliResult};

/// A command-line argument as the bytes the user passed (etcdctl takes keys and values that are
/// not UTF-8 as they are).
pub fn bytes(arg: &OsStr) -> &[u8] {
    arg.as_bytes()
}

/// The keys named by `KEY [RANGE_END] [--prefix] [--from-key]`, with etcdctl's argument rules.
pub fn key_range(
    key: &[u8],
    range_end: Option<&[u8]>,
    prefix: bool,
    from_key: bool,
) -> CliResult<Range> {
    if prefix && from_key {
        return Err(CliError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    if range_end.is_some() && (prefix || from_key) {
        return Err(CliError::bad_args(
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
        ));
    }
    Ok(match (range_end, prefix, from_key) {
        (Some(end), _, _) => Range::between(key, end),
        (None, true, _) => Range::prefix(key),
        // etcdctl sends "\x00" for an empty key with --from-key: every key.
        (None, _, true) if key.is_empty() => Range::all(),
        (None, _, true) => Range::from_key(key),
        (None, false, false) => Range::key(key),
    })
}

/// Range options of `get`. As etcd's server does, a sort target other than the key without an
/// order sorts ascending.
pub fn range_options(a: &GetArgs) -> RangeOptions {
    let sort_target = match a.sort_by.unwrap_or(SortBy::Key) {
        SortBy::Key => SortTarget::Key,
        SortBy::Version => SortTarget::Version,
        SortBy::Create => SortTarget::Create,
        SortBy::Modify => SortTarget::Mod,
        SortBy::Value => SortTarget::Value,
    };
    let sort_order = match a.order {
        Some(Order::Ascend) => SortOrder::Ascend,
        Some(Order::Descend) => SortOrder::Descend,
        None if sort_target != SortTarget::Key => SortOrder::Ascend,
        None => SortOrder::None,
    };
    RangeOptions {
        limit: a.limit.max(0),
        // etcd reads at the current revision for any revision <= 0 (`get --rev -1`).
        revision: a.rev.max(0),
        sort_order,
        sort_target,
        keys_only: a.keys_only,
        count_only: a.count_only,
        min_mod_revision: a.min_mod_revision,
        max_mod_revision: a.max_mod_revision,
        min_create_revision: a.min_create_revision,
        max_create_revision: a.max_create_revision,
    }
}

/// etcd refuses a request whose key is empty (`--prefix` and `--from-key` with an empty key
/// name every key, and are fine).
fn require_key(range: Range) -> CliResult<Range> {
    if range.start().is_empty() {
        return Err(CliError::from(etch::Error::EmptyKey));
    }
    Ok(range)
}

/// The range of `get`.
pub fn get_range(a: &GetArgs) -> CliResult<Range> {
    if a.consistency != "l" && a.consistency != "s" {
        return Err(CliError::bad_feature(format!(
            "unknown consistency flag {:?}",
            a.consistency
        )));
    }
    let filters = [
        a.min_mod_revision,
        a.max_mod_revision,
        a.min_create_revision,
        a.max_create_revision,
    ];
    if filters.iter().any(|r| *r < 0) {
        return Err(CliError::bad_args("revision filters must not be negative"));
    }
    let end = a.range_end.as_deref().map(bytes);
    require_key(key_range(bytes(&a.key), end, a.prefix, a.from_key)?)
}

/// The range of `del`.
pub fn del_range(a: &DelArgs) -> CliResult<Range> {
    let end = a.range_end.as_deref().map(bytes);
    require_key(key_range(bytes(&a.key), end, a.prefix, a.from_key)?)
}

/// A put of `value` with the flags of `a`.
pub fn put_op(a: &PutArgs, value: Vec<u8>) -> CliResult<PutOp> {
    let lease = match &a.lease {
        Some(id) => parse_lease_id(id, "bad lease ID")?,
        None => 0,
    };
    Ok(PutOp {
        key: bytes(&a.key).to_vec(),
        value,
        lease,
        prev_kv: a.prev_kv,
        ignore_value: a.ignore_value,
        ignore_lease: a.ignore_lease,
    })
}

/// A lease id as etcdctl takes it: hexadecimal (an optional `0x` is accepted too). A bad id
/// gets etcdctl's message, `<what> (<Go's parse error>), expecting ID in Hex`, where `what` is
/// "bad lease ID" (put) or "bad lease ID arg" (the lease commands).
pub fn parse_lease_id(s: &str, what: &str) -> CliResult<i64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let reason = match i64::from_str_radix(digits, 16) {
        Ok(id) if id >= 0 => return Ok(id),
        Ok(_) => "negative lease ID",
        Err(e) if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) => "value out of range",
        Err(_) => "invalid syntax",
    };
    Err(CliError::bad_args(format!(
        "{what} (strconv.ParseInt: parsing {s:?}: {reason}), expecting ID in Hex"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_are_hex() {
        let what = "bad lease ID";
        assert_eq!(
            parse_lease_id("694d77aa9e38260f", what).unwrap(),
            0x694d77aa9e38260f
        );
        assert_eq!(parse_lease_id("0x10", what).unwrap(), 16);
        let err = parse_lease_id("zz", what).unwrap_err();
        assert_eq!(err.code, 128);
        assert_eq!(
            err.message,
            r#"bad lease ID (strconv.ParseInt: parsing "zz": invalid syntax), expecting ID in Hex"#
        );
        assert_eq!(parse_lease_id("-1", what).unwrap_err().code, 128);
        let err = parse_lease_id("1ffffffffffffffff", what).unwrap_err();
        assert!(
            err.message.contains("value out of range"),
            "{}",
            err.message
        );
    }

    #[test]
    fn ranges_follow_etcdctl() {
        assert_eq!(
            key_range(b"a", None, false, false).unwrap(),
            Range::key("a")
        );
        assert_eq!(
            key_range(b"a", None, true, false).unwrap(),
            Range::prefix("a")
        );
        assert_eq!(
            key_range(b"a", Some(b"c"), false, false).unwrap(),
            Range::between("a", "c")
        );
        assert_eq!(key_range(b"", None, false, true).unwrap(), Range::all());
        assert_eq!(key_range(b"a", None, true, true).unwrap_err().code, 128);
        assert_eq!(
            key_range(b"a", Some(b"c"), true, false).unwrap_err().code,
            128
        );
    }
}
