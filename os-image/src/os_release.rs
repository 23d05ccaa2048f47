//! The fields of `/etc/os-release` that keel writes at build time and reads back at run time: the OS version and
//! the `compatible` string an update checks a bundle against.

/// Path of the file in the root filesystem.
pub const OS_RELEASE: &str = "/etc/os-release";
/// The OS version (the recipe's `version`), unquoted.
pub const VERSION_FIELD: &str = "VERSION_ID";
/// The recipe's `compatible`, quoted: which update bundles this OS installs.
pub const COMPATIBLE_FIELD: &str = "KEEL_COMPATIBLE";

/// The value of `name` in os-release text, without its double quotes; `None` when absent.
pub fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix('=')?;
        Some(value.strip_prefix('"').and_then(|value| value.strip_suffix('"')).unwrap_or(value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quoted_and_bare_values() {
        let text = "NAME=keel\nVERSION_ID=1.2.0\nKEEL_COMPATIBLE=\"keel-x86_64-qemu\"\n";
        assert_eq!(field(text, VERSION_FIELD), Some("1.2.0"));
        assert_eq!(field(text, COMPATIBLE_FIELD), Some("keel-x86_64-qemu"));
        assert_eq!(field(text, "VERSION"), None);
    }
}
