//! Reads the `[logs]` section and a container's `log_max_size`/`log_max_files`: the size and count of its
//! json-file logs.

use crate::reader::{Field, Reader, Table};
use crate::values::byte_size::parse_byte_size;

/// A log file smaller than this would rotate at nearly every line.
const MIN_SIZE: u64 = 4 << 10;
/// More files than this is a mistake (Docker sets no bound; the reader looks for at most 1000).
const MAX_FILES: i64 = 100;

/// `[logs]`: what every container's log files are limited to unless its own table says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogsConfig {
    /// Bytes a file grows to before it is rotated (`max_size`, Docker's `max-size`).
    pub max_size: u64,
    /// Files kept, the current one included (`max_files`, Docker's `max-file`).
    pub max_files: u32,
}

impl Default for LogsConfig {
    /// `10m` and 3, Docker's json-file figures for `docker run --log-opt max-size=10m`.
    fn default() -> LogsConfig {
        LogsConfig { max_size: 10 << 20, max_files: 3 }
    }
}

pub(crate) fn read(reader: &mut Reader, field: &Field) -> LogsConfig {
    let mut logs = LogsConfig::default();
    let Some(table) = reader.table(field, &["max_size", "max_files"]) else { return logs };
    let (max_size, max_files) = limits(reader, &table, "max_size", "max_files");
    logs.max_size = max_size.unwrap_or(logs.max_size);
    logs.max_files = max_files.unwrap_or(logs.max_files);
    logs
}

/// `size_key` as a byte size of at least 4k and `files_key` as 1..=100, each `None` when absent or wrong (the
/// error is recorded where it is).
pub(crate) fn limits(
    reader: &mut Reader,
    table: &Table,
    size_key: &str,
    files_key: &str,
) -> (Option<u64>, Option<u32>) {
    let max_size = table.get(size_key).and_then(|field| {
        reader.parse(&field, |text| match parse_byte_size(text) {
            Ok(bytes) if bytes < MIN_SIZE => Err(format!("{text:?} is below the minimum of 4k")),
            other => other.map_err(|error| error.to_string()),
        })
    });
    let max_files = table
        .get(files_key)
        .and_then(|field| reader.integer_in(&field, 1, MAX_FILES))
        .and_then(|count| u32::try_from(count).ok());
    (max_size, max_files)
}

#[cfg(test)]
mod tests {
    use crate::UserData;

    #[test]
    fn defaults_host_wide_values_and_errors_with_their_place() {
        let user_data = UserData::parse("user-data", "").unwrap();
        assert_eq!((user_data.logs.max_size, user_data.logs.max_files), (10 << 20, 3));
        let text = "[logs]\nmax_size = \"1m\"\nmax_files = 5\n\n[containers.web]\nimage = \"busybox\"\nlog_max_size = \"64k\"\nlog_max_files = 2\n";
        let user_data = UserData::parse("user-data", text).unwrap();
        assert_eq!((user_data.logs.max_size, user_data.logs.max_files), (1 << 20, 5));
        let web = &user_data.containers["web"];
        assert_eq!((web.log_max_size, web.log_max_files), (Some(64 << 10), Some(2)));
        let bad = "[logs]\nmax_size = \"1k\"\nmax_files = 0\n\n[containers.web]\nimage = \"busybox\"\nlog_max_size = \"lots\"\n";
        let errors = UserData::parse("user-data", bad).unwrap_err().to_string();
        assert!(errors.contains("user-data:2:12: logs.max_size: \"1k\" is below the minimum of 4k"), "{errors}");
        assert!(errors.contains("user-data:3:13: logs.max_files:"), "{errors}");
        assert!(errors.contains("user-data:7:16: containers.web.log_max_size:"), "{errors}");
    }
}
