//! A request's query string as `key → value`, percent-decoded (Docker clients encode filters as JSON in it).

use std::collections::HashMap;

/// The decoded pairs of `query` (a key without `=` has an empty value; the last of repeated keys wins).
pub fn parse(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// `%XX` and `+` decoded; a malformed escape is kept as written; invalid UTF-8 replaced.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() && text.is_char_boundary(index + 3) => {
                match u8::from_str_radix(&text[index + 1..index + 3], 16) {
                    Ok(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Docker's booleans in queries: `1`, `true`, `True`.
pub fn flag(query: &HashMap<String, String>, key: &str) -> bool {
    query.get(key).is_some_and(|value| matches!(value.as_str(), "1" | "true" | "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_and_escapes() {
        let query = parse(Some("all=1&filters=%7B%22name%22%3A%5B%22web%22%5D%7D&t=5&x&bad=%zz%4"));
        assert_eq!(query["filters"], r#"{"name":["web"]}"#);
        assert_eq!(query["t"], "5");
        assert_eq!(query["x"], "");
        assert_eq!(query["bad"], "%zz%4");
        assert!(flag(&query, "all"));
        assert!(!flag(&query, "t"));
    }
}
