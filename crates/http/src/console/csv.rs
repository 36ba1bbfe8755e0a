//! CSV downloads of the console's lists, written as they are read.
//!
//! Invariants:
//!
//! * A download is streamed: its body is a stream of keyset pages, each fetched through the
//!   same use case as the page on screen when the one before has been written, so no more
//!   than one page is in memory whatever the size of the list. The first page is fetched
//!   before the answer starts, so a refusal (permission, bad filter) is an error page, not a
//!   200 with a broken file; a failure later ends the body early (the client sees an
//!   incomplete transfer, never a silently short file).
//! * Cells are quoted as RFC 4180 says (fields holding a comma, a quote or a line break are
//!   quoted, quotes doubled) and rows end with CRLF.
//! * A cell a spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, a tab or
//!   a carriage return) is written with a leading `'`, so text from customers and licenses
//!   never runs in the vendor's spreadsheet.

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt, TryStreamExt};
use keyturn_app::{AppError, Page};

/// One cell: neutralised if a spreadsheet would take it for a formula, quoted if needed.
pub(super) fn cell(text: &str) -> String {
    let neutral = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

/// One row of cells, CRLF-terminated.
pub(super) fn row<S: AsRef<str>>(cells: &[S]) -> String {
    let mut line = cells
        .iter()
        .map(|c| cell(c.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// Where a download goes on from.
enum Next<T> {
    /// A page already fetched.
    Ready(Page<T>),
    /// The page after this cursor.
    After(String),
}

/// A CSV download named `filename`: the `header` row, then every row of `first` and of the
/// pages `fetch` returns for each next cursor, each rendered by `render`.
pub(super) fn download<T, F, Fut>(
    filename: &str,
    header: &[&str],
    first: Page<T>,
    fetch: F,
    render: fn(&T) -> Vec<String>,
) -> Response
where
    T: Send + 'static,
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Page<T>, AppError>> + Send + 'static,
{
    let head = stream::once(std::future::ready(Ok::<_, std::io::Error>(Bytes::from(
        row(header),
    ))));
    let rows = stream::try_unfold(Some(Next::Ready(first)), move |next| {
        let fetch = fetch.clone();
        async move {
            let page = match next {
                None => return Ok(None),
                Some(Next::Ready(page)) => page,
                Some(Next::After(cursor)) => fetch(cursor).await.map_err(|e| {
                    tracing::warn!(error = %e, "a CSV download ended early");
                    std::io::Error::other(e.to_string())
                })?,
            };
            let chunk: String = page.data.iter().map(|r| row(&render(r))).collect();
            Ok(Some((
                Bytes::from(chunk),
                page.next_cursor.map(Next::After),
            )))
        }
    });
    let body = Body::from_stream(head.chain(rows).into_stream());
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_when_they_must_be() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell(""), "");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(row(&["1", "x,y"]), "1,\"x,y\"\r\n");
    }

    #[test]
    fn formulas_are_neutralised() {
        assert_eq!(cell("=1+2"), "'=1+2");
        assert_eq!(cell("+49 30 1234"), "'+49 30 1234");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("\tx"), "'\tx");
        assert_eq!(
            cell("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        assert_eq!(cell("a=b"), "a=b", "only a leading sign counts");
    }
}
