//! What commands print on standard output, in one place.
//!
//! Lists have one shape: a table by default, or with `--output json` the API's page object
//! `{"data": [...], "next_cursor": ...}` (null when there is no more), so a script reads every
//! list the same way. Single objects print as JSON.
//!
//! Writes return their error instead of panicking (`println!` does): when the reader of a pipe
//! goes away (`keyturn license show … | head -1`), the command ends quietly and successfully
//! ([`is_closed_pipe`]); whatever it changed is already committed.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

/// How a list is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with a header line.
    #[default]
    Table,
    /// `{"data": [...], "next_cursor": ...}`.
    Json,
}

// The options every list command takes (no doc comment: it would become the help of a
// list command without one).
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// `table`, or `json` for `{"data": [...], "next_cursor": ...}`.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

// The page options of lists the server pages.
#[derive(Debug, Clone, clap::Args)]
pub struct PageArgs {
    /// At most this many (the server caps it).
    #[arg(long)]
    pub limit: Option<i64>,
    /// Continue after this `next_cursor`.
    #[arg(long)]
    pub cursor: Option<String>,
}

impl PageArgs {
    pub fn request(&self) -> keyturn_app::PageRequest {
        keyturn_app::PageRequest {
            cursor: self.cursor.clone(),
            limit: self.limit,
        }
    }
}

fn write(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Prints `text` as it is.
pub fn text(text: &str) -> anyhow::Result<()> {
    write(text.as_bytes())
}

/// Prints `text` and a newline.
pub fn line(text: impl std::fmt::Display) -> anyhow::Result<()> {
    write(format!("{text}\n").as_bytes())
}

/// Prints one object as indented JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    line(serde_json::to_string_pretty(value)?)
}

/// Prints a list: `columns` of each item in a table, or the page as JSON.
pub fn list<T: Serialize>(
    args: &ListArgs,
    data: &[T],
    next_cursor: Option<&str>,
    columns: &[&str],
) -> anyhow::Result<()> {
    match args.output {
        Format::Json => json(&serde_json::json!({"data": data, "next_cursor": next_cursor})),
        Format::Table => {
            let rows = data
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = table(columns, &rows);
            if let Some(cursor) = next_cursor {
                out.push_str(&format!("(more: --cursor {cursor})\n"));
            }
            text(&out)
        }
    }
}

/// `rows` (JSON objects) as aligned columns, a header line first.
fn table(columns: &[&str], rows: &[Value]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(&row[*c])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let header = columns.iter().map(|c| c.to_uppercase());
    std::iter::once(header.collect::<Vec<_>>())
        .chain(cells)
        .map(|row| {
            let mut line = String::new();
            for (i, value) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(value);
                } else {
                    let pad = widths[i] - value.chars().count();
                    line.push_str(value);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            line.trim_end().to_owned() + "\n"
        })
        .collect()
}

/// One value in a cell: text as is, lists of text joined by commas, absent as `-`.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.replace(['\n', '\t'], " "),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            if items.is_empty() {
                "-".into()
            } else {
                items.iter().map(cell).collect::<Vec<_>>().join(",")
            }
        }
        other => other.to_string(),
    }
}

/// Whether `err` is a write to a pipe nobody reads any more.
pub fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_aligns_columns_under_a_header() {
        let rows = [
            json!({"id": 1, "name": "Editor", "features": ["pro", "export"], "gone": null}),
            json!({"id": 12, "name": "A\nB", "features": [], "gone": "2024-01-01"}),
        ];
        assert_eq!(
            table(&["id", "name", "features", "gone"], &rows),
            "ID  NAME    FEATURES    GONE\n\
             1   Editor  pro,export  -\n\
             12  A B     -           2024-01-01\n"
        );
        assert_eq!(table(&["id", "name"], &[]), "ID  NAME\n");
    }

    #[test]
    fn nested_values_print_as_json() {
        assert_eq!(cell(&json!({"a": 1})), "{\"a\":1}");
        assert_eq!(cell(&json!([{"a": 1}])), "[{\"a\":1}]");
        assert_eq!(cell(&json!(true)), "true");
    }

    #[test]
    fn a_closed_pipe_is_told_apart_from_other_errors() {
        let closed = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("printing");
        assert!(is_closed_pipe(&closed));
        let other = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(!is_closed_pipe(&other));
    }
}
