//! Parses the boot timeline (`keel: <ms>ms <stage>` lines) that PID 1 prints on the serial console; `make bench`'s
//! peer host prints the same format with its own prefix (`peer: `).

/// Prefix of every line PID 1 prints.
pub const PREFIX: &str = "keel: ";
/// What follows the container's name on its output lines: `web | <line>`.
pub const CONTAINER_SEPARATOR: &str = " | ";

/// One timeline entry: a stage and the CLOCK_BOOTTIME milliseconds at which it was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// First word after the timestamp, e.g. `root-mounted`.
    pub name: String,
    /// Guest uptime in milliseconds.
    pub ms: u64,
    /// The rest of the line after the stage name, trimmed (often empty).
    pub detail: String,
}

/// The timeline entries of one boot, in console order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    pub stages: Vec<Stage>,
}

impl Timeline {
    /// Collects every `keel: <ms>ms <stage>` line in `console`; other lines are ignored.
    ///
    /// The marker may sit anywhere in a line, because kernel messages can share a line with PID 1's output.
    pub fn parse(console: &str) -> Self {
        Self::parse_prefixed(console, PREFIX)
    }

    /// Collects every `<prefix><ms>ms <stage>` line in `console` (e.g. the bench's peer host, `peer: `).
    pub fn parse_prefixed(console: &str, prefix: &str) -> Self {
        Self { stages: console.lines().filter_map(|line| parse_line_prefixed(line, prefix)).collect() }
    }

    /// Milliseconds of the first entry named `stage` whose detail's first word is `word` (e.g. a container name).
    pub fn ms_of(&self, stage: &str, word: &str) -> Option<u64> {
        self.stages.iter().find(|s| s.name == stage && s.detail.split_whitespace().next() == Some(word)).map(|s| s.ms)
    }

    /// Milliseconds of the first entry named `stage`.
    pub fn ms(&self, stage: &str) -> Option<u64> {
        self.stages.iter().find(|s| s.name == stage).map(|s| s.ms)
    }

    /// Milliseconds from `from` to `to` (both first occurrences); `None` if either is missing or `to` is earlier.
    pub fn between(&self, from: &str, to: &str) -> Option<u64> {
        self.ms(to)?.checked_sub(self.ms(from)?)
    }
}

/// Parses one timeline line: `keel: 3450ms root-mounted keel-root-a vda2`, or the summary form PID 1 uses for
/// the ready line, `keel: ready: 4012ms, slot a, …`.
pub fn parse_line(line: &str) -> Option<Stage> {
    parse_line_prefixed(line, PREFIX)
}

/// [`parse_line`] for lines that start with `prefix` instead of `keel: `. A container's output line
/// (`<name> | …`) is never a stage, whatever it says.
pub fn parse_line_prefixed(line: &str, prefix: &str) -> Option<Stage> {
    let rest = text_after_prefix(line, prefix)?;
    parse_stamp_first(rest).or_else(|| parse_name_first(rest))
}

/// The part of a console line after PID 1's `keel: ` prefix; `None` for a container's output line
/// (`<name> | …`), which may say anything, `keel: 5ms ready` included.
pub fn pid1_text(line: &str) -> Option<&str> {
    text_after_prefix(line, PREFIX)
}

fn text_after_prefix<'l>(line: &'l str, prefix: &str) -> Option<&'l str> {
    let at = line.find(prefix)?;
    if line[..at].contains(CONTAINER_SEPARATOR) {
        return None;
    }
    Some(&line[at + prefix.len()..])
}

/// `<ms>ms <stage> [detail]`
fn parse_stamp_first(rest: &str) -> Option<Stage> {
    let (stamp, rest) = rest.split_once("ms ")?;
    let ms = stamp.parse().ok()?;
    let rest = rest.trim();
    let (name, detail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if name.is_empty() {
        return None;
    }
    Some(Stage { name: name.to_owned(), ms, detail: detail.trim().to_owned() })
}

/// `<stage>: <ms>ms[, detail]`
fn parse_name_first(rest: &str) -> Option<Stage> {
    let (name, rest) = rest.split_once(": ")?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let (stamp, detail) = rest.split_once("ms").filter(|(_, d)| d.is_empty() || d.starts_with(','))?;
    let ms = stamp.parse().ok()?;
    Some(Stage { name: name.to_owned(), ms, detail: detail.trim_start_matches(',').trim().to_owned() })
}

/// True for the line announcing that the host is ready: `keel: ready …` or a timeline entry named `ready`.
pub fn is_ready_line(line: &str) -> bool {
    pid1_text(line).is_some_and(|rest| rest.starts_with("ready")) || parse_line(line).is_some_and(|s| s.name == "ready")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stages_and_skips_other_lines() {
        let console = "[    2.9] Run /init as init process\nkeel: 3012ms init-started\nnoise\n\
                       keel: 3450ms root-mounted /dev/vda2\nkeel: unmounted /var\nkeel: 3901ms ready\n";
        let t = Timeline::parse(console);
        assert_eq!(t.stages.len(), 3);
        assert_eq!(t.ms("init-started"), Some(3012));
        assert_eq!(t.stages[1].detail, "/dev/vda2");
        assert_eq!(t.between("init-started", "root-mounted"), Some(438));
        assert_eq!(t.between("ready", "init-started"), None);
        assert_eq!(t.ms("missing"), None);
    }

    #[test]
    fn finds_marker_after_other_text() {
        let stage = parse_line("\u{1b}[0mkeel: 12ms init-started").map(|s| (s.name, s.ms));
        assert_eq!(stage, Some(("init-started".to_owned(), 12)));
        assert_eq!(parse_line("keel: stage 1 failed: no keel-root-a"), None);
        assert_eq!(parse_line("keel: 12ms "), None);
        assert_eq!(parse_line("keel: error: stage 1 failed: no partition keel-root-a after 10ms"), None);
        assert_eq!(parse_line("keel: unmounted /var (/dev/vda4)"), None);
    }

    #[test]
    fn parses_the_ready_summary_line() {
        let stage = parse_line("keel: ready: 4012ms, slot a, keel 0.1.0, host keel");
        assert_eq!(stage.as_ref().map(|s| (s.name.as_str(), s.ms)), Some(("ready", 4012)));
        assert_eq!(stage.map(|s| s.detail).as_deref(), Some("slot a, keel 0.1.0, host keel"));
        assert_eq!(parse_line("keel: ready: 4012ms").map(|s| s.ms), Some(4012));
    }

    #[test]
    fn parses_other_prefixes_and_details() {
        let console = "peer: 2450ms init-started\nkeel: 9ms ready\npeer: 41000ms container-started hello (docker)\n";
        let t = Timeline::parse_prefixed(console, "peer: ");
        assert_eq!(t.stages.len(), 2);
        assert_eq!(t.ms("ready"), None);
        assert_eq!(t.ms_of("container-started", "hello"), Some(41000));
        assert_eq!(t.ms_of("container-started", "hell"), None);
    }

    #[test]
    fn recognises_ready_lines() {
        assert!(is_ready_line("keel: ready"));
        assert!(is_ready_line("keel: 4100ms ready"));
        assert!(is_ready_line("keel: ready: 4100ms, slot a"));
        assert!(!is_ready_line("keel: 4100ms root-mounted"));
        assert!(!is_ready_line("web | keel: ready"));
        assert!(!is_ready_line("web | keel: 5ms ready"));
        assert_eq!(parse_line("web | keel: 5ms init-started"), None);
    }
}
