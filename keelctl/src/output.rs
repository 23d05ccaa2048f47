//! How keelctl prints for people: aligned tables as `docker ps` draws them, ages and sizes as Docker words them,
//! and the JSON it prints for scripts.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Columns separated by three spaces, each as wide as its widest cell; the last is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header_row: Vec<String> = headers.iter().map(|header| (*header).to_owned()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            if index + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[index].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 3));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `value` as one line of JSON on stdout (one document, or one line of a stream).
pub fn json_line(value: &serde_json::Value) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, value)?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

/// `text` on stdout as it is.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// `5 seconds ago`, `About a minute ago`, `3 hours ago` (Docker's wording) for a Unix time in seconds.
pub fn ago(unix_seconds: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let seconds = i64::try_from(now).unwrap_or(i64::MAX).saturating_sub(unix_seconds).max(0);
    format!("{} ago", duration_words(seconds.unsigned_abs()))
}

/// Docker's `HumanDuration`: `Less than a second`, `5 seconds`, `About a minute`, `2 hours`, `3 days`.
pub fn duration_words(seconds: u64) -> String {
    let minutes = seconds / 60;
    let hours = minutes / 60;
    match seconds {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        2..=59 => format!("{seconds} seconds"),
        60..=119 => "About a minute".to_owned(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours < 2 => "About an hour".to_owned(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 14 => format!("{} days", hours / 24),
        _ if hours < 24 * 60 => format!("{} weeks", hours / 24 / 7),
        _ => format!("{} months", hours / 24 / 30),
    }
}

/// `4.26MB` (decimal units, three significant digits, as `docker images` prints sizes).
pub fn size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    // Precision is irrelevant beyond three digits: f64 holds any size shown here.
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 100.0 || unit == 0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text };
    format!("{text}{}", units[unit])
}

/// `text` cut to `width` characters with `…` where cut (as `docker ps` cuts the command).
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_like_docker_ps() {
        let rows = vec![vec!["abc".to_owned(), "x".to_owned()], vec!["a".to_owned(), "yyyy".to_owned()]];
        assert_eq!(table(&["ID", "NAME"], &rows), "ID    NAME\nabc   x\na     yyyy\n");
    }

    #[test]
    fn words_durations_and_sizes_as_docker() {
        assert_eq!(duration_words(0), "Less than a second");
        assert_eq!(duration_words(45), "45 seconds");
        assert_eq!(duration_words(90), "About a minute");
        assert_eq!(duration_words(3 * 3600), "3 hours");
        assert_eq!(size(999), "999B");
        assert_eq!(size(4_260_000), "4.26MB");
        assert_eq!(size(12_000_000), "12MB");
        assert_eq!(size(1_500), "1.5kB");
        assert_eq!(truncate("sleep 100000", 6), "sleep…");
    }
}
