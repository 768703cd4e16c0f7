//! The cost as text: an aligned table of the lines, dollars to the cent a month, beside
//! what runs now (and the difference) when the stack exists, then the table's date and
//! the assumptions.

use super::{prices, Estimate};

/// `$1,234.56`.
pub fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.abs();
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}${grouped}.{:02}", cents % 100)
}

/// `+$3.00`, `-$3.00`, or `$0.00`.
pub fn signed(cents: i64) -> String {
    if cents > 0 {
        format!("+{}", dollars(cents))
    } else {
        dollars(cents)
    }
}

fn amount(cents: Option<i64>) -> String {
    cents.map_or_else(|| "?".to_string(), dollars)
}

/// The table of `configured`, compared with `running` when given (the lines of both come
/// from `estimate`, so they are the same items in the same order).
pub fn render(title: &str, configured: &Estimate, running: Option<&Estimate>) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    if running.is_some() {
        rows.push(vec![
            "".into(),
            "".into(),
            "now".into(),
            "configured".into(),
            "change".into(),
        ]);
    }
    for (i, line) in configured.lines.iter().enumerate() {
        let mut detail = line.detail.clone();
        if let Some(unpriced) = &line.unpriced {
            detail = format!("{detail}: {unpriced}");
        }
        let mut row = vec![line.item.to_string()];
        match running.and_then(|r| r.lines.get(i)) {
            Some(now) => {
                if now.detail != line.detail {
                    detail = format!("{detail}; now {}", now.detail);
                }
                let change = match (now.cents, line.cents) {
                    (Some(a), Some(b)) => signed(b - a),
                    _ => "?".into(),
                };
                row.extend([detail, amount(now.cents), amount(line.cents), change]);
            }
            None => row.extend([detail, amount(line.cents)]),
        }
        rows.push(row);
    }
    let unpriced = configured.unpriced() + running.map_or(0, Estimate::unpriced);
    let total_label = if unpriced > 0 {
        "priced lines only".to_string()
    } else {
        String::new()
    };
    let mut total = vec!["total".to_string(), total_label];
    match running {
        Some(now) => total.extend([
            dollars(now.total()),
            dollars(configured.total()),
            signed(configured.total() - now.total()),
        ]),
        None => total.push(dollars(configured.total())),
    }
    rows.push(total);

    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{title}\n");
    for row in &rows {
        let mut text = String::new();
        for (c, cell) in row.iter().enumerate() {
            let w = widths[c];
            if c < 2 {
                text.push_str(&format!("  {cell:<w$}"));
            } else {
                text.push_str(&format!("  {cell:>w$}"));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    if let Some(max) = configured.at_max {
        out.push_str(&format!(
            "  Up to {} a month as configured, with the group at app.max_size.\n",
            dollars(max)
        ));
    }
    for note in configured
        .notes
        .iter()
        .chain(running.into_iter().flat_map(|r| r.notes.iter()))
    {
        out.push_str(&format!("  note: {note}\n"));
    }
    out.push_str(&format!(
        "  Prices: AWS's on-demand list prices of {}, from {} (which were checked, and how: its `checked`).\n",
        configured.prices_of,
        prices::PATH
    ));
    for (i, a) in super::assumptions().iter().enumerate() {
        out.push_str(if i == 0 { "  Assumed: " } else { "    " });
        out.push_str(a);
        out.push('\n');
    }
    out
}

/// The table of what `down` keeps.
pub fn render_retained(title: &str, kept: &Estimate) -> String {
    let mut out = render(title, kept, None);
    // The usage assumptions are not the kept data's: keep only the table and its prices.
    if let Some(cut) = out.find("  Assumed: ") {
        out.truncate(cut);
    }
    out
}
