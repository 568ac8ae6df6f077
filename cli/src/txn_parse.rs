//! etcdctl's transaction syntax, read from stdin by `etch txn`.
//!
//! ```text
//! mod("key1") > "0"            <- compares, one per line
//!                              <- blank line
//! put key1 "overwrote-key1"    <- requests if every compare holds
//!                              <- blank line
//! put key1 "created-key1"      <- requests otherwise
//! ```
//!
//! Requests take the flags of the top-level `put`, `get` and `del` (parsed by the same clap
//! definitions); words split as etcdctl's `Argify`: bare words, 'single-quoted' raw strings and
//! "double-quoted" strings with Go escapes. End of input ends the current section, so a missing
//! final blank line is not an error. Every parse failure is invalid input (exit 3).

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStringExt;

use clap::Parser;
use etch::{Compare, CompareOp, CompareTarget, Txn, TxnOp};

use crate::args::TxnRequest;
use crate::error::{CliError, CliResult};
use crate::requests;

/// Reads a whole transaction from `input`; with `prompts`, prints etcdctl's interactive prompts
/// to `prompt_out` before each section.
pub fn read_txn(input: &mut dyn BufRead, prompts: Option<&mut dyn Write>) -> CliResult<Txn> {
    let mut prompt_out = prompts;
    let mut prompt = |s: &str| -> CliResult<()> {
        if let Some(out) = prompt_out.as_mut() {
            writeln!(out, "{s}")?;
            out.flush()?;
        }
        Ok(())
    };
    let mut txn = Txn::new();
    prompt("compares:")?;
    for line in read_section(input)? {
        txn.compare.push(parse_compare(&line)?);
    }
    prompt("success requests (get, put, del):")?;
    for line in read_section(input)? {
        txn.success.push(parse_request(&line)?);
    }
    prompt("failure requests (get, put, del):")?;
    for line in read_section(input)? {
        txn.failure.push(parse_request(&line)?);
    }
    Ok(txn)
}

/// Trimmed lines up to the next blank line or the end of input.
fn read_section(input: &mut dyn BufRead) -> CliResult<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = input
            .read_line(&mut line)
            .map_err(|e| CliError::invalid_input(format!("reading the transaction: {e}")))?;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Ok(lines);
        }
        lines.push(trimmed.to_string());
        if n == 0 || !line.ends_with('\n') {
            return Ok(lines);
        }
    }
}

/// One compare: `TARGET("key") OP "operand"`, TARGET one of value/val, version/ver,
/// create/c, mod/m, lease (operand in hex), OP one of `=`, `!=`, `<`, `>`.
pub fn parse_compare(line: &str) -> CliResult<Compare> {
    let malformed =
        |why: &str| CliError::invalid_input(format!("malformed comparison: {line} ({why})"));
    let (target, rest) = line.split_once('(').ok_or_else(|| malformed("no '('"))?;
    let target = target.trim();
    let rest = rest.trim_start();
    let (key, rest) = take_quoted(rest).map_err(|e| malformed(&e))?;
    let rest = rest
        .trim_start()
        .strip_prefix(')')
        .ok_or_else(|| malformed("no ')' after the key"))?
        .trim_start();
    let (op, rest) = rest
        .split_once(char::is_whitespace)
        .ok_or_else(|| malformed("no operand"))?;
    let op = match op {
        "=" | "==" => CompareOp::Equal,
        "!=" => CompareOp::NotEqual,
        "<" => CompareOp::Less,
        ">" => CompareOp::Greater,
        other => return Err(malformed(&format!("unknown operator {other}"))),
    };
    let rest = rest.trim();
    let operand = if rest.starts_with('"') {
        let (v, tail) = take_quoted(rest).map_err(|e| malformed(&e))?;
        if !tail.trim().is_empty() {
            return Err(malformed("text after the operand"));
        }
        v
    } else {
        // etcdctl requires quotes; a bare word is accepted as the same operand.
        rest.as_bytes().to_vec()
    };
    let number = |base: u32| -> CliResult<i64> {
        let s = String::from_utf8_lossy(&operand);
        i64::from_str_radix(s.trim(), base).map_err(|e| {
            CliError::invalid_input(format!("invalid txn compare request: {line} ({e})"))
        })
    };
    let target = match target {
        "value" | "val" => CompareTarget::Value(operand.clone()),
        "version" | "ver" => CompareTarget::Version(number(10)?),
        "create" | "c" => CompareTarget::Create(number(10)?),
        "mod" | "m" => CompareTarget::Mod(number(10)?),
        "lease" => CompareTarget::Lease(number(16)?),
        other => return Err(malformed(&format!("unknown target {other}"))),
    };
    Ok(Compare {
        range: etch::Range::key(key),
        op,
        target,
    })
}

/// One request line: `put ...`, `get ...` or `del ...` with their command-line flags.
pub fn parse_request(line: &str) -> CliResult<TxnOp> {
    let invalid = || CliError::invalid_input(format!("invalid txn request: {line}"));
    let words = argify(line)?;
    let request = TxnRequest::try_parse_from(words).map_err(|_| invalid())?;
    Ok(match request {
        TxnRequest::Put(p) => {
            let value = match (&p.value, p.ignore_value) {
                (Some(v), _) => requests::bytes(v).to_vec(),
                (None, true) => Vec::new(),
                (None, false) => return Err(invalid()),
            };
            TxnOp::Put(requests::put_op(&p, value).map_err(|_| invalid())?)
        }
        TxnRequest::Get(g) => TxnOp::Range {
            range: requests::get_range(&g).map_err(|_| invalid())?,
            options: requests::range_options(&g),
        },
        TxnRequest::Del(d) => TxnOp::DeleteRange {
            range: requests::del_range(&d).map_err(|_| invalid())?,
            prev_kv: d.prev_kv,
        },
    })
}

/// Splits a line into words as etcdctl's `Argify`. A double-quoted word may hold any bytes
/// (`"\xff"`), so words are `OsString`s.
pub fn argify(line: &str) -> CliResult<Vec<OsString>> {
    let mut words = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if rest.starts_with('"') {
            let (bytes, tail) =
                take_quoted(rest).map_err(|e| CliError::invalid_input(format!("{line}: {e}")))?;
            words.push(OsString::from_vec(bytes));
            rest = tail;
        } else if let Some(body) = rest.strip_prefix('\'') {
            let end = body
                .find('\'')
                .ok_or_else(|| CliError::invalid_input(format!("{line}: unterminated quote")))?;
            words.push(body[..end].into());
            rest = &body[end + 1..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            words.push(rest[..end].into());
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Ok(words)
}

/// Parses a Go double-quoted string at the start of `s`; returns its bytes and the text after
/// the closing quote.
fn take_quoted(s: &str) -> Result<(Vec<u8>, &str), String> {
    let body = s
        .strip_prefix('"')
        .ok_or_else(|| "expected a double-quoted string".to_string())?;
    let mut out = Vec::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next().ok_or("unterminated escape")?;
                match e {
                    'a' => out.push(7),
                    'b' => out.push(8),
                    'f' => out.push(12),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    'v' => out.push(11),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    '\'' => out.push(b'\''),
                    'x' | 'u' | 'U' => {
                        let len = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let digits: String = (0..len)
                            .filter_map(|_| chars.next().map(|(_, d)| d))
                            .collect();
                        let n = u32::from_str_radix(&digits, 16)
                            .ok()
                            .filter(|_| digits.len() == len)
                            .ok_or_else(|| format!("bad \\{e} escape"))?;
                        if e == 'x' {
                            out.push(n as u8);
                        } else {
                            let c = char::from_u32(n).ok_or("bad unicode escape")?;
                            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        }
                    }
                    '0'..='7' => {
                        let mut digits = String::from(e);
                        for _ in 0..2 {
                            digits.push(chars.next().ok_or("bad octal escape")?.1);
                        }
                        let n = u8::from_str_radix(&digits, 8).map_err(|_| "bad octal escape")?;
                        out.push(n);
                    }
                    other => return Err(format!("unknown escape \\{other}")),
                }
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    Err("unterminated double-quoted string".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares() {
        let c = parse_compare(r#"value("k") = "v""#).unwrap();
        assert_eq!(c.range, etch::Range::key("k"));
        assert_eq!(c.op, CompareOp::Equal);
        assert_eq!(c.target, CompareTarget::Value(b"v".to_vec()));
        let c = parse_compare(r#"mod("k") > "5""#).unwrap();
        assert_eq!(
            (c.op, c.target),
            (CompareOp::Greater, CompareTarget::Mod(5))
        );
        let c = parse_compare(r#"ver("k") != 0"#).unwrap();
        assert_eq!(
            (c.op, c.target),
            (CompareOp::NotEqual, CompareTarget::Version(0))
        );
        let c = parse_compare(r#"lease("k") = "1f""#).unwrap();
        assert_eq!(c.target, CompareTarget::Lease(31));
        let c = parse_compare(r#"c("a\"b") < "3""#).unwrap();
        assert_eq!(c.range, etch::Range::key("a\"b"));
        for bad in [
            r#"value"k" = "v""#,
            r#"foo("k") = "v""#,
            r#"mod("k") > "x""#,
            r#"value("k") ~ "v""#,
            r#"value("k = "v""#,
        ] {
            assert_eq!(parse_compare(bad).unwrap_err().code, 3, "{bad}");
        }
    }

    #[test]
    fn words_split_as_argify() {
        assert_eq!(
            argify(r#"put k "a b\n" 'c d'"#).unwrap(),
            vec!["put", "k", "a b\n", "c d"]
        );
        assert_eq!(
            argify(r#"put "\xff" v"#).unwrap()[1],
            OsString::from_vec(vec![0xff])
        );
        assert!(argify(r#"put "k"#).is_err());
    }

    #[test]
    fn requests_and_sections() {
        let input = "mod(\"k\") > \"0\"\n\nput k v --prev-kv\nget k\n\ndel a z\n";
        let txn = read_txn(&mut input.as_bytes(), None).unwrap();
        assert_eq!(txn.compare.len(), 1);
        assert_eq!(txn.success.len(), 2);
        assert_eq!(txn.failure.len(), 1);
        assert!(matches!(&txn.success[0], TxnOp::Put(p) if p.prev_kv && p.value == b"v"));
        assert_eq!(parse_request("put k").unwrap_err().code, 3);
        assert_eq!(parse_request("frob k").unwrap_err().code, 3);
        assert_eq!(parse_request("get k --bogus").unwrap_err().code, 3);
    }
}
