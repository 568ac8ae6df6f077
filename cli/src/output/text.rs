//! Byte-string renderings shared by the printers: Go's `%q` quoting (fields output and the
//! watch hook's environment, as etcdctl), etcdctl's `--hex` escapes, and go-humanize's byte sizes.

use std::fmt::Write;

/// Bytes as Go's `strconv.Quote(string(b))`: double-quoted, printable UTF-8 kept, `"` and `\`
/// escaped, control characters as `\n`-style or `\u` escapes, invalid UTF-8 bytes as `\xNN`.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if (c as u32) < 0x80 && c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() => {
                    if (c as u32) <= 0xffff {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    } else {
                        let _ = write!(out, "\\U{:08x}", c as u32);
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// etcdctl's `--hex` rendering: every byte as `\xNN`.
pub fn hex_escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4);
    for b in bytes {
        let _ = write!(out, "\\x{b:02x}");
    }
    out
}

/// Bytes for display: hex-escaped with `--hex`, else lossy UTF-8 (etcdctl prints raw bytes).
pub fn display_bytes(bytes: &[u8], hex: bool) -> String {
    if hex {
        hex_escaped(bytes)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// A byte count as go-humanize's `Bytes` (SI units): "0 B", "950 B", "1.2 kB", "25 MB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

/// A lease id as etcdctl prints it: 16 lower-case hex digits.
pub fn lease_hex(id: i64) -> String {
    format!("{id:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote(b"abc"), "\"abc\"");
        assert_eq!(go_quote(b"a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_quote(b"\x00\xff"), "\"\\x00\\xff\"");
        assert_eq!(go_quote("é".as_bytes()), "\"é\"");
    }

    #[test]
    fn hex_and_sizes() {
        assert_eq!(hex_escaped(b"ab"), "\\x61\\x62");
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(950), "950 B");
        assert_eq!(human_bytes(1200), "1.2 kB");
        assert_eq!(human_bytes(25_000_000), "25 MB");
        assert_eq!(lease_hex(0x694d77aa9e38260f), "694d77aa9e38260f");
    }
}
