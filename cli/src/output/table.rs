//! Bordered tables in the style of etcdctl's `-w table` (olekukonko/tablewriter): centred
//! headers, cells padded by one space, left-aligned, or right-aligned as etcdctl's status
//! tables (`endpoint status`, `snapshot status`).

/// How cells are aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text at the left (etch's own tables).
    Left,
    /// Text at the right (etcdctl's status tables).
    Right,
}

/// Renders `headers` and `rows` (each row as long as `headers`) as a table with left-aligned
/// cells, ending in a newline.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    render_aligned(headers, rows, Align::Left)
}

/// Renders `headers` and `rows` as a table with cells aligned by `align`.
pub fn render_aligned(headers: &[&str], rows: &[Vec<String>], align: Align) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(h.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let border: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = border.clone();
    for (h, w) in headers.iter().zip(&widths) {
        let pad = w - h.chars().count();
        let left = pad / 2;
        out.push_str(&format!(
            "| {}{}{} ",
            " ".repeat(left),
            h,
            " ".repeat(pad - left)
        ));
    }
    out.push_str("|\n");
    out.push_str(&border);
    for row in rows {
        for (cell, w) in row.iter().zip(&widths) {
            let pad = " ".repeat(w - cell.chars().count());
            match align {
                Align::Left => out.push_str(&format!("| {cell}{pad} ")),
                Align::Right => out.push_str(&format!("| {pad}{cell} ")),
            }
        }
        out.push_str("|\n");
    }
    out.push_str(&border);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_a_bordered_table() {
        let t = super::render(&["KEY", "VALUE"], &[vec!["a".into(), "hello".into()]]);
        assert_eq!(
            t,
            "+-----+-------+\n| KEY | VALUE |\n+-----+-------+\n| a   | hello |\n+-----+-------+\n"
        );
        let t = super::render_aligned(
            &["HASH", "REVISION"],
            &[vec!["ab".into(), "7".into()]],
            super::Align::Right,
        );
        assert_eq!(
            t,
            "+------+----------+\n| HASH | REVISION |\n+------+----------+\n|   ab |        7 |\n+------+----------+\n"
        );
    }
}
