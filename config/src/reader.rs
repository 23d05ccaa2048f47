//! Walks the spanned TOML tree of a user-data file: typed reads of keys that record every problem with its key
//! path and line:column instead of stopping at the first one.

use std::fmt::Display;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::ConfigError;

/// A value of the parsed file with its byte span.
pub(crate) type Node<'i> = Spanned<DeValue<'i>>;

/// Collects the errors of one file; turns byte offsets into 1-based line and column.
pub(crate) struct Reader<'t> {
    file: String,
    text: &'t str,
    line_starts: Vec<usize>,
    errors: Vec<(usize, ConfigError)>,
    warnings: Vec<(usize, ConfigError)>,
}

/// A table being read: its key path, where to report missing keys, and its entries.
pub(crate) struct Table<'a, 'i> {
    pub path: String,
    pub span: Range<usize>,
    table: &'a DeTable<'i>,
}

/// One value at a key path.
#[derive(Clone)]
pub(crate) struct Field<'a, 'i> {
    pub path: String,
    pub node: &'a Node<'i>,
}

impl<'t> Reader<'t> {
    pub fn new(file: &str, text: &'t str) -> Self {
        let line_starts =
            std::iter::once(0).chain(text.match_indices('\n').map(|(index, _)| index + 1)).collect::<Vec<_>>();
        Reader { file: file.to_owned(), text, line_starts, errors: Vec::new(), warnings: Vec::new() }
    }

    /// Records an error at byte offset `span.start`.
    pub fn error(&mut self, span: Range<usize>, path: &str, message: impl Display) {
        let placed = self.place(span, path, message);
        self.errors.push(placed);
    }

    /// Records a warning: the file is valid, but something in it does not do what its reader may expect.
    pub fn warning(&mut self, span: Range<usize>, path: &str, message: impl Display) {
        let placed = self.place(span, path, message);
        self.warnings.push(placed);
    }

    /// The warnings so far, in file order.
    pub fn take_warnings(&mut self) -> Vec<ConfigError> {
        let mut warnings = std::mem::take(&mut self.warnings);
        warnings.sort_by_key(|(offset, _)| *offset);
        warnings.into_iter().map(|(_, warning)| warning).collect()
    }

    fn place(&self, span: Range<usize>, path: &str, message: impl Display) -> (usize, ConfigError) {
        let offset = span.start.min(self.text.len());
        let line_index = self.line_starts.partition_point(|start| *start <= offset).saturating_sub(1);
        let line_start = self.line_starts.get(line_index).copied().unwrap_or(0);
        let column = self.text.get(line_start..offset).map_or(1, |prefix| prefix.chars().count() + 1);
        let error = ConfigError {
            file: self.file.clone(),
            line: line_index + 1,
            column,
            path: path.to_owned(),
            message: message.to_string(),
        };
        (offset, error)
    }

    /// The errors so far, in file order (a stable sort keeps the order of errors found at one place).
    pub fn finish(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|(offset, _)| *offset);
        self.errors.into_iter().map(|(_, error)| error).collect()
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Reports a value of the wrong type, unless the parser already reported it as a syntax error (empty span).
    pub fn wrong_type(&mut self, field: &Field, expected: &str) {
        if !field.node.span().is_empty() {
            self.error(field.node.span(), &field.path, format!("{} is not {expected}", describe(field.node)));
        }
    }

    /// Opens a table whose keys must be among `keys`; unknown keys are reported at the key.
    pub fn table<'a, 'i>(&mut self, field: &Field<'a, 'i>, keys: &[&str]) -> Option<Table<'a, 'i>> {
        let table = self.map(field)?;
        for (key, _) in table.table.iter() {
            if !keys.contains(&key.get_ref().as_ref()) {
                let path = join(&table.path, key.get_ref());
                self.error(key.span(), &path, format!("unknown key; expected one of {}", keys.join(", ")));
            }
        }
        Some(table)
    }

    /// Opens a table whose keys are names chosen by the user (containers, labels, registries).
    pub fn map<'a, 'i>(&mut self, field: &Field<'a, 'i>) -> Option<Table<'a, 'i>> {
        match field.node.get_ref() {
            DeValue::Table(table) => Some(Table { path: field.path.clone(), span: field.node.span(), table }),
            _ => {
                self.wrong_type(field, "a table");
                None
            }
        }
    }

    pub fn string<'a>(&mut self, field: &Field<'a, '_>) -> Option<&'a str> {
        match field.node.get_ref() {
            DeValue::String(text) => Some(text.as_ref()),
            _ => {
                self.wrong_type(field, "a string");
                None
            }
        }
    }

    pub fn bool(&mut self, field: &Field) -> Option<bool> {
        match field.node.get_ref() {
            DeValue::Boolean(value) => Some(*value),
            _ => {
                self.wrong_type(field, "true or false");
                None
            }
        }
    }

    pub fn integer(&mut self, field: &Field) -> Option<i64> {
        let parsed = match field.node.get_ref() {
            DeValue::Integer(integer) => i64::from_str_radix(integer.as_str(), integer.radix()).ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.wrong_type(field, "an integer");
        }
        parsed
    }

    /// An integer within `min..=max`.
    pub fn integer_in(&mut self, field: &Field, min: i64, max: i64) -> Option<i64> {
        let value = self.integer(field)?;
        if (min..=max).contains(&value) {
            Some(value)
        } else {
            self.error(field.node.span(), &field.path, format!("{value} is not between {min} and {max}"));
            None
        }
    }

    /// A number; integers are accepted as floats.
    pub fn float(&mut self, field: &Field) -> Option<f64> {
        let parsed = match field.node.get_ref() {
            DeValue::Float(float) => float.as_str().replace('_', "").parse().ok(),
            DeValue::Integer(_) => self.integer(field).map(|value| value as f64),
            _ => None,
        };
        if parsed.is_none() {
            self.wrong_type(field, "a number");
        }
        parsed
    }

    /// A string turned into `T` by `parse`, whose error message is reported as is.
    pub fn parse<T, E: Display>(&mut self, field: &Field, parse: impl FnOnce(&str) -> Result<T, E>) -> Option<T> {
        let text = self.string(field)?;
        match parse(text) {
            Ok(value) => Some(value),
            Err(error) => {
                self.error(field.node.span(), &field.path, error);
                None
            }
        }
    }

    /// The items of an array, each at `path[index]`.
    pub fn array<'a, 'i>(&mut self, field: &Field<'a, 'i>) -> Option<Vec<Field<'a, 'i>>> {
        match field.node.get_ref() {
            DeValue::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, node)| Field { path: format!("{}[{index}]", field.path), node })
                    .collect(),
            ),
            _ => {
                self.wrong_type(field, "an array");
                None
            }
        }
    }

    /// An array of strings, each parsed by `parse`; bad items are reported and left out.
    pub fn parse_array<T, E: Display>(&mut self, field: &Field, parse: impl Fn(&str) -> Result<T, E>) -> Vec<T> {
        let items = self.array(field).unwrap_or_default();
        items.iter().filter_map(|item| self.parse(item, &parse)).collect()
    }

    pub fn string_array(&mut self, field: &Field) -> Vec<String> {
        self.parse_array(field, |text| Ok::<_, String>(text.to_owned()))
    }
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn get(&self, key: &str) -> Option<Field<'a, 'i>> {
        self.table.get(key).map(|node| Field { path: join(&self.path, key), node })
    }

    /// The entries in file order, each with its key and the key's span.
    pub fn entries(&self) -> Vec<(&'a str, Range<usize>, Field<'a, 'i>)> {
        let mut entries: Vec<_> = self
            .table
            .iter()
            .map(|(key, node)| {
                (key.get_ref().as_ref(), key.span(), Field { path: join(&self.path, key.get_ref()), node })
            })
            .collect();
        entries.sort_by_key(|(_, span, _)| span.start);
        entries
    }

    /// The parsed table itself, for reading it as a whole.
    pub fn raw(&self) -> &'a DeTable<'i> {
        self.table
    }
}

impl<'a, 'i> Field<'a, 'i> {
    /// The whole document as the root field.
    pub fn root(node: &'a Node<'i>) -> Self {
        Field { path: String::new(), node }
    }
}

/// `parent.key`, quoting keys that are not bare TOML keys: `registries."ghcr.io"`.
pub(crate) fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty() && key.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    let key = if bare { key.to_owned() } else { format!("{key:?}") };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// A value as messages show it: strings quoted, numbers and booleans as written, arrays and tables by kind.
pub(crate) fn describe(node: &Node) -> String {
    match node.get_ref() {
        DeValue::String(text) => format!("{:?}", text.as_ref()),
        DeValue::Integer(integer) => integer.to_string(),
        DeValue::Float(float) => float.to_string(),
        DeValue::Boolean(value) => value.to_string(),
        DeValue::Datetime(datetime) => datetime.to_string(),
        DeValue::Array(_) => "an array".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_errors_at_line_and_character_column() {
        let text = "a = 1\nb = \"é\" # x\n";
        let mut reader = Reader::new("f", text);
        reader.error(text.find('#').unwrap()..text.len(), "b", "here");
        reader.error(0..1, "a", "first");
        let errors = reader.finish();
        assert_eq!(errors[0].to_string(), "f:1:1: a: first");
        assert_eq!(errors[1].to_string(), "f:2:9: b: here");
    }

    #[test]
    fn quotes_keys_that_are_not_bare() {
        assert_eq!(join("registries", "ghcr.io"), "registries.\"ghcr.io\"");
        assert_eq!(join("", "host"), "host");
    }
}
