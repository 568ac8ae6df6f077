//! Bordered tables in the style of etcdctl's `-w table` (olekukonko/tablewriter): centred
//! headers, left-aligned cells padded by one space.

/// Renders `headers` and `rows` (each row as long as `headers`) as a table, ending in a newline.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
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
            let pad = w - cell.chars().count();
            out.push_str(&format!("| {}{} ", cell, " ".repeat(pad)));
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
    }
}
