//! The canonical form of a `[containers.<name>]` table as the user wrote it, and its digest.
//!
//! A container's writable layer is kept while its definition stays the same. "The same" is decided on what the
//! user wrote, not on [`ContainerConfig`](super::ContainerConfig): a keel release that adds a field with a default,
//! or changes a default, must not count as a change, or every update would throw away every container's files.
//! The form ignores key order and spelling (`0x10` and `16`, `1e3` and `1000.0`, quoting styles) and keeps
//! everything else: array order, value types, and keys written with their default value (what the user wrote is the
//! definition, whatever this release's defaults are).

use sha2::{Digest, Sha256};
use toml::de::{DeTable, DeValue};

/// The canonical text of `table`: JSON-like, keys sorted, numbers in one spelling, strings JSON-escaped.
pub fn canonical_text(table: &DeTable) -> String {
    let mut text = String::new();
    write_table(&mut text, table);
    text
}

/// The sha256 (hex) of [`canonical_text`].
pub fn definition_digest(table: &DeTable) -> String {
    Sha256::digest(canonical_text(table).as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn write_table(text: &mut String, table: &DeTable) {
    let mut entries: Vec<(&str, &DeValue)> =
        table.iter().map(|(key, value)| (key.get_ref().as_ref(), value.get_ref())).collect();
    entries.sort_by_key(|(key, _)| *key);
    text.push('{');
    for (index, (key, value)) in entries.into_iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        write_string(text, key);
        text.push(':');
        write_value(text, value);
    }
    text.push('}');
}

fn write_value(text: &mut String, value: &DeValue) {
    match value {
        DeValue::String(string) => write_string(text, string),
        DeValue::Integer(integer) => match i128::from_str_radix(integer.as_str(), integer.radix()) {
            Ok(number) => text.push_str(&number.to_string()),
            // Out of range for any config key (the reader refuses it); keep it distinct and stable.
            Err(_) => text.push_str(&format!("int({},{})", integer.radix(), integer.as_str())),
        },
        DeValue::Float(float) => match float.as_str().parse::<f64>() {
            Ok(number) => text.push_str(&format!("float({number:?})")),
            Err(_) => text.push_str(&format!("float({})", float.as_str())),
        },
        DeValue::Boolean(boolean) => text.push_str(if *boolean { "true" } else { "false" }),
        DeValue::Datetime(datetime) => text.push_str(&format!("datetime({datetime})")),
        DeValue::Array(array) => {
            text.push('[');
            for (index, item) in array.iter().enumerate() {
                if index > 0 {
                    text.push(',');
                }
                write_value(text, item.get_ref());
            }
            text.push(']');
        }
        DeValue::Table(table) => write_table(text, table),
    }
}

fn write_string(text: &mut String, string: &str) {
    // serde_json escapes every control character and quote; it cannot fail on a &str.
    text.push_str(&serde_json::to_string(string).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(toml: &str) -> String {
        let table = DeTable::parse(toml).unwrap();
        canonical_text(table.get_ref())
    }

    #[test]
    fn key_order_and_number_and_string_spelling_do_not_matter() {
        let first = canonical(
            "image = \"busybox\"\nmemory = \"64M\"\nstop_timeout = 16\ncpus = 1.5\n\
             env = { B = \"2\", A = \"1\" }\ncommand = [\"sleep\", \"1\"]\n",
        );
        assert_eq!(
            first,
            r#"{"command":["sleep","1"],"cpus":float(1.5),"env":{"A":"1","B":"2"},"image":"busybox","memory":"64M","stop_timeout":16}"#
        );
        let reordered = canonical(
            "stop_timeout = 0x10\nmemory = \"64M\"\ncommand = ['sleep', \"1\"]\nimage = 'busybox'\ncpus = 15e-1\n\
             [env]\nB = \"\"\"2\"\"\"\nA = \"1\"\n",
        );
        assert_eq!(first, reordered);
    }

    #[test]
    fn array_order_types_and_escapes_matter() {
        assert_ne!(canonical("command = [\"a\", \"b\"]"), canonical("command = [\"b\", \"a\"]"));
        assert_ne!(canonical("stop_timeout = 10"), canonical("stop_timeout = \"10\""));
        assert_ne!(canonical("a = \"x\\ny\""), canonical("a = \"x\\\\ny\""));
        assert_eq!(canonical("a = \"x\\ny\""), "{\"a\":\"x\\ny\"}");
    }
}
