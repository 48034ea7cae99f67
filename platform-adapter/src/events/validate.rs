//! The bounds check run after parsing: lengths and list sizes the type system cannot express.

use url::Url;

use super::limits;

/// A value that can check its own bounds; `at` is the JSON path of the value, for messages.
pub(crate) trait Validate {
    /// The first violation found, as a human-readable reason.
    fn validate(&self, at: &str) -> Result<(), String>;
}

/// A string of at most `max` characters (JSON Schema counts characters, not bytes).
pub(crate) fn text(at: &str, field: &str, value: &str, max: usize) -> Result<(), String> {
    let chars = value.chars().count();
    if chars > max {
        return Err(format!(
            "{}: {chars} characters, at most {max} allowed",
            path(at, field)
        ));
    }
    Ok(())
}

/// `at.field`, or `at` alone for list items that have no field name.
fn path(at: &str, field: &str) -> String {
    if field.is_empty() {
        at.to_owned()
    } else {
        format!("{at}.{field}")
    }
}

/// A string that must also not be empty.
pub(crate) fn required_text(at: &str, field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{}: must not be empty", path(at, field)));
    }
    text(at, field, value, max)
}

/// An optional string of at most `max` characters.
pub(crate) fn optional_text(
    at: &str,
    field: &str,
    value: Option<&String>,
    max: usize,
) -> Result<(), String> {
    value.map_or(Ok(()), |v| text(at, field, v, max))
}

/// A URL no longer than [`limits::URL`].
pub(crate) fn url(at: &str, field: &str, value: &Url) -> Result<(), String> {
    text(at, field, value.as_str(), limits::URL)
}

/// An optional URL.
pub(crate) fn optional_url(at: &str, field: &str, value: Option<&Url>) -> Result<(), String> {
    value.map_or(Ok(()), |v| url(at, field, v))
}

/// A list of at most `max` items, each checked by `item`.
pub(crate) fn list<T>(
    at: &str,
    field: &str,
    items: &[T],
    max: usize,
    item: impl Fn(&str, &T) -> Result<(), String>,
) -> Result<(), String> {
    if items.len() > max {
        return Err(format!(
            "{at}.{field}: {} items, at most {max} allowed",
            items.len()
        ));
    }
    items
        .iter()
        .enumerate()
        .try_for_each(|(i, value)| item(&format!("{at}.{field}[{i}]"), value))
}

/// Whether `value` looks like `@name@server`. Hand-written: a regex crate for one fixed shape
/// would be a heavier dependency than these few lines.
pub(crate) fn handle(at: &str, field: &str, value: &str) -> Result<(), String> {
    text(at, field, value, limits::HANDLE)?;
    let shaped = value
        .strip_prefix('@')
        .and_then(|rest| rest.split_once('@'))
        .is_some_and(|(name, server)| {
            !name.is_empty()
                && !server.is_empty()
                && !server.contains('@')
                && !value.chars().any(char::is_whitespace)
        });
    if shaped {
        Ok(())
    } else {
        Err(format!(
            "{}: {value:?} is not of the form @name@server",
            path(at, field)
        ))
    }
}

/// The JSON Schema pattern equivalent to [`handle`].
pub(crate) const HANDLE_PATTERN: &str = r"^@[^@\s]+@[^@\s]+$";
