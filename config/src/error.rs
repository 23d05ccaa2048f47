//! The errors a user-data file can have, each placed at a line and column, and their one-line-each display.

use std::fmt;

/// One problem in a user-data file: where it is, which key, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to the parser, e.g. `user-data`.
    pub file: String,
    /// 1-based line of the bad value (or of the key, for an unknown key).
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// The key path, e.g. `containers.web.restart` or `network.interface[0].mtu`; empty for syntax errors.
    pub path: String,
    /// What is wrong and what is allowed, e.g. `"sometimes" is not one of no, on-failure[:N], always, unless-stopped`.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one file, in file order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.errors.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_line_column_path_and_message() {
        let error = |line, path: &str| ConfigError {
            file: "user-data".into(),
            line,
            column: 11,
            path: path.into(),
            message: "bad".into(),
        };
        let errors = ConfigErrors { errors: vec![error(14, "containers.web.restart"), error(15, "")] };
        assert_eq!(errors.to_string(), "user-data:14:11: containers.web.restart: bad\nuser-data:15:11: bad");
    }
}
