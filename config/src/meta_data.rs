//! Reads cloud meta-data: NoCloud's `meta-data` (flat `key: value` YAML) and OpenStack's `meta_data.json`.

/// What keel takes from meta-data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaData {
    /// Changes when the machine is a new instance (NoCloud `instance-id`, OpenStack `uuid`).
    pub instance_id: Option<String>,
    /// NoCloud `local-hostname`; OpenStack `hostname`, else `name`. Used when `[host] hostname` is not set.
    pub hostname: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetaDataError {
    #[error("meta-data line {line}: {text:?} is not `key: value`")]
    NoCloudLine { line: usize, text: String },
    #[error("meta_data.json is not JSON: {message}")]
    Json { message: String },
    #[error("meta_data.json is not a JSON object")]
    NotAnObject,
}

/// Parses NoCloud `meta-data`: top-level `key: value` lines; values may be single- or double-quoted.
/// Blank lines, `#` comments, a `---` document marker and indented lines (nested values) are skipped;
/// keys other than `instance-id` and `local-hostname` are ignored.
pub fn parse_nocloud(text: &str) -> Result<MetaData, MetaDataError> {
    let mut meta_data = MetaData::default();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed.trim_start().is_empty()
            || trimmed.trim_start().starts_with('#')
            || trimmed == "---"
            || line.starts_with([' ', '\t', '-'])
        {
            continue;
        }
        let (key, value) = trimmed
            .split_once(':')
            .ok_or_else(|| MetaDataError::NoCloudLine { line: index + 1, text: line.to_owned() })?;
        let value = unquote(strip_comment(value.trim()));
        let value = (!value.is_empty()).then(|| value.to_owned());
        match key.trim() {
            "instance-id" => meta_data.instance_id = value,
            "local-hostname" => meta_data.hostname = value,
            _ => {}
        }
    }
    Ok(meta_data)
}

/// Parses OpenStack `meta_data.json`: `uuid`, `hostname`, `name`; other keys are ignored.
pub fn parse_openstack(text: &str) -> Result<MetaData, MetaDataError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| MetaDataError::Json { message: error.to_string() })?;
    let object = value.as_object().ok_or(MetaDataError::NotAnObject)?;
    let string = |key: &str| object.get(key).and_then(|value| value.as_str()).map(str::to_owned);
    Ok(MetaData { instance_id: string("uuid"), hostname: string("hostname").or_else(|| string("name")) })
}

/// A plain YAML scalar ends at ` #`.
fn strip_comment(value: &str) -> &str {
    if value.starts_with(['"', '\'']) {
        return value;
    }
    value.split_once(" #").map_or(value, |(value, _)| value.trim_end())
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(quote).and_then(|rest| rest.strip_suffix(quote)) {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nocloud_key_value_lines() {
        let text = "# made by hand\ninstance-id: \"iid-42\"\nlocal-hostname: 'web-1' \npublic-keys:\n  - ssh-ed25519 AAA\nother: x # note\n";
        let meta_data = parse_nocloud(text).unwrap();
        assert_eq!(meta_data.instance_id.as_deref(), Some("iid-42"));
        assert_eq!(meta_data.hostname.as_deref(), Some("web-1"));
        assert_eq!(
            parse_nocloud("instance-id: a\nnonsense\n"),
            Err(MetaDataError::NoCloudLine { line: 2, text: "nonsense".into() })
        );
        assert_eq!(parse_nocloud("").unwrap(), MetaData::default());
    }

    #[test]
    fn reads_openstack_json() {
        let meta_data =
            parse_openstack(r#"{"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "name": "web-1"}"#).unwrap();
        assert_eq!(meta_data.instance_id.as_deref(), Some("83679162-1378-4288-a2d4-70e13ec132aa"));
        assert_eq!(meta_data.hostname.as_deref(), Some("web-1"));
        assert_eq!(parse_openstack("[]"), Err(MetaDataError::NotAnObject));
        assert!(matches!(parse_openstack("{"), Err(MetaDataError::Json { .. })));
    }
}
