//! Error locations: the line and column of a TOML syntax error, and the line of a dotted key
//! path in the user's file.

use super::ConfigError;

pub(super) fn syntax_error(error: toml::de::Error, text: &str, origin: &str) -> ConfigError {
    let (line, column) = error
        .span()
        .map(|span| line_column(text, span.start))
        .unwrap_or((1, 1));
    ConfigError::Syntax {
        origin: origin.to_owned(),
        line,
        column,
        message: error.message().to_owned(),
    }
}

pub(super) fn invalid(text: &str, origin: &str, key: String, message: String) -> ConfigError {
    let line = key_line(text, &key);
    ConfigError::Invalid {
        origin: origin.to_owned(),
        key,
        line,
        message,
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The line of a dotted key path (`network.http_port`, `apps[1].title`) in `text`, if the key
/// appears there. Falls back to the nearest enclosing key that does.
fn key_line(text: &str, path: &str) -> Option<usize> {
    let document = toml_edit::ImDocument::parse(text).ok()?;
    let mut item: &toml_edit::Item = document.as_item();
    let mut span = None;
    for segment in split_key_path(path) {
        let next = match segment {
            PathSegment::Key(key) => item.get(key),
            PathSegment::Index(index) => item.get(index),
        };
        let Some(next) = next else { break };
        item = next;
        span = item_span(item).or(span);
    }
    span.map(|offset| line_column(text, offset).0)
}

fn item_span(item: &toml_edit::Item) -> Option<usize> {
    match item {
        toml_edit::Item::Value(value) => value.span().map(|s| s.start),
        toml_edit::Item::Table(table) => table.span().map(|s| s.start),
        toml_edit::Item::ArrayOfTables(tables) => tables.span().map(|s| s.start),
        toml_edit::Item::None => None,
    }
}

enum PathSegment<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_key_path(path: &str) -> Vec<PathSegment<'_>> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            segments.push(PathSegment::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(index) = index.parse() {
                segments.push(PathSegment::Index(index));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    segments
}
