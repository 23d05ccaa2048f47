//! The kernel command line: `key=value` tokens, as PID 1 must parse them itself.
//!
//! Parameters with a dot (`keel.slot=a`) never reach init's argv or environment, and under systemd-boot the line
//! starts with `initrd=\…`, so the line is split into tokens and looked up by key.

use keel_logs::error_chain;

/// A parsed kernel command line.
#[derive(Debug, Default, Clone)]
pub struct KernelCmdline {
    tokens: Vec<(String, Option<String>)>,
}

impl KernelCmdline {
    /// Reads `/proc/cmdline`; an unreadable one is treated as empty so that defaults apply.
    pub fn read() -> Self {
        match std::fs::read_to_string("/proc/cmdline") {
            Ok(text) => Self::parse(&text),
            Err(error) => {
                log::warn!("cannot read /proc/cmdline, using defaults: {}", error_chain(&error));
                Self::default()
            }
        }
    }

    /// Splits on whitespace outside double quotes, as the kernel does; quotes are removed from values.
    pub fn parse(text: &str) -> Self {
        let mut tokens = Vec::new();
        let mut current = String::new();
        let mut in_quotes = false;
        for character in text.chars().chain(std::iter::once(' ')) {
            match character {
                '"' => in_quotes = !in_quotes,
                c if c.is_whitespace() && !in_quotes => {
                    if !current.is_empty() {
                        tokens.push(split_token(&current));
                        current.clear();
                    }
                }
                c => current.push(c),
            }
        }
        KernelCmdline { tokens }
    }

    /// The value of the last `key=value` for `key` (the kernel's rule: the last one wins).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.tokens.iter().rev().find(|(name, _)| name == key).and_then(|(_, value)| value.as_deref())
    }

    /// Whether `key` appears at all, with or without a value.
    pub fn has(&self, key: &str) -> bool {
        self.tokens.iter().any(|(name, _)| name == key)
    }
}

fn split_token(token: &str) -> (String, Option<String>) {
    match token.split_once('=') {
        Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
        None => (token.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_after_systemd_boot_initrd_token() {
        let cmdline = KernelCmdline::parse("initrd=\\keel\\a\\initrd.img console=ttyS0 keel.slot=b quiet\n");
        assert_eq!(cmdline.value("keel.slot"), Some("b"));
        assert_eq!(cmdline.value("initrd"), Some("\\keel\\a\\initrd.img"));
        assert!(cmdline.has("quiet"));
        assert_eq!(cmdline.value("quiet"), None);
        assert_eq!(cmdline.value("keel.rootwait"), None);
    }

    #[test]
    fn last_value_wins_and_quotes_group() {
        let cmdline = KernelCmdline::parse("keel.slot=a keel.slot=b name=\"two words\" x");
        assert_eq!(cmdline.value("keel.slot"), Some("b"));
        assert_eq!(cmdline.value("name"), Some("two words"));
        assert!(cmdline.has("x"));
    }
}
