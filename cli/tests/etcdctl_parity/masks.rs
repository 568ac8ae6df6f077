//! Normalisations for outputs that differ for a reason: numbers that count down, lists in a
//! server's map order, random ids inside keys, and table layouts compared by shape.

/// Replaces the number after each of `markers` (up to the next non-digit) with `N`, after
/// checking it lies in `range`.
pub fn mask_numbers(s: &str, markers: &[&str], range: std::ops::RangeInclusive<i64>) -> String {
    let mut out = s.to_string();
    for m in markers {
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(m) {
            let (head, tail) = rest.split_at(at + m.len());
            result.push_str(head);
            let digits: String = tail
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            let n: i64 = digits
                .parse()
                .unwrap_or_else(|_| panic!("no number after {m} in {s}"));
            assert!(range.contains(&n), "{m}{n} not in {range:?}: {s}");
            result.push('N');
            rest = &tail[digits.len()..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// `lease timetolive --keys` output with the keys in order, in each format.
pub fn sort_lease_keys(s: &str) -> String {
    fn sorted(list: &str, sep: &str) -> String {
        let mut items: Vec<&str> = list.split(sep).collect();
        items.sort();
        items.join(sep)
    }
    for (open, close, sep) in [("\"keys\":[", "]", ","), ("attached keys([", "])", " ")] {
        if let Some((head, rest)) = s.split_once(open) {
            let (list, tail) = rest.split_once(close).expect("end of the key list");
            return format!("{head}{open}{}{close}{tail}", sorted(list, sep));
        }
    }
    let (mut keys, mut other): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for line in s.lines() {
        if line.starts_with("\"Key\" : ") {
            keys.push(line);
        } else {
            other.push(line);
        }
    }
    keys.sort();
    // In fields output the key lines come last.
    other.extend(keys);
    other.iter().map(|l| format!("{l}\n")).collect()
}

/// Lease list output with its ids (lines, or the JSON list's entries) in name order.
pub fn sort_leases(s: &str) -> String {
    // Normalised JSON is no longer JSON (`{"id":<lease-1>}`): sort the list's entries as text.
    if let Some((head, rest)) = s.split_once("\"leases\":[") {
        let (list, tail) = rest.split_once(']').expect("end of the lease list");
        let mut entries: Vec<&str> = list.split(',').collect();
        entries.sort();
        return format!("{head}\"leases\":[{}]{tail}", entries.join(","));
    }
    let mut lines: Vec<&str> = s.lines().collect();
    let first_id = lines
        .iter()
        .position(|l| l.contains("<lease-"))
        .unwrap_or(lines.len());
    lines[first_id..].sort();
    lines.join("\n") + "\n"
}

/// A table reduced to its column names and how each cell is aligned.
pub fn table_shape(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
        let shape: Vec<String> = cells
            .iter()
            .map(|c| {
                let text = c.trim();
                if !text.is_empty() && text.chars().all(|ch| ch.is_ascii_uppercase() || ch == ' ') {
                    text.to_string() // a header
                } else if c.len() - c.trim_end().len() > 1 {
                    // Padded on the right. (A cell as wide as its column counts as right-aligned.)
                    "<left>".to_string()
                } else {
                    "<right>".to_string()
                }
            })
            .collect();
        out.push_str(&shape.join("|"));
        out.push('\n');
    }
    out
}

/// `NAME/<hex>` (a lock or election key named after its session's lease) as `NAME/<session>`.
pub fn mask_session_keys(s: &str, name: &str) -> String {
    let marker = format!("{name}/");
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find(&marker) {
        let (head, tail) = rest.split_at(at + marker.len());
        out.push_str(head);
        let hex = tail.chars().take_while(|c| c.is_ascii_hexdigit()).count();
        assert!(hex > 0, "no lease id after {marker}: {s}");
        out.push_str("<session>");
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
}

/// `endpoint health`'s durations (Go's `time.Duration` text after `took = `, `"took":"` or
/// `"Took" : `) as `<took>`, after checking each looks like one.
pub fn mask_took(s: &str) -> String {
    let mut out = s.to_string();
    for (marker, stop) in [
        ("took = ", '\n'),
        ("\"took\":\"", '"'),
        ("\"Took\" : ", '\n'),
    ] {
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(marker) {
            let (head, tail) = rest.split_at(at + marker.len());
            result.push_str(head);
            let end = tail.find(stop).unwrap_or(tail.len());
            let took = &tail[..end];
            assert!(
                took.ends_with('s') && took.starts_with(|c: char| c.is_ascii_digit()),
                "not a duration: {took:?} in {s}"
            );
            result.push_str("<took>");
            rest = &tail[end..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}
