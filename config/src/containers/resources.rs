//! Reads a container's resource limits: `memory`, `cpus`, `cpu_shares`, `cpuset`, `pids_limit`, `ulimits`.

use std::collections::BTreeMap;

use crate::reader::{describe, Field, Reader, Table};
use crate::values::byte_size::parse_byte_size;
use toml::de::DeValue;

/// Docker refuses memory limits below 6 MiB; so does keel.
const MIN_MEMORY: u64 = 6 << 20;

/// Resource names `ulimits` accepts (Docker's `--ulimit`).
const ULIMITS: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Limits on what one container may use; `None` means unlimited (or the kernel's default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// `memory.max` in bytes.
    pub memory: Option<u64>,
    /// CPUs' worth of time (`cpu.max`), e.g. 1.5.
    pub cpus: Option<f64>,
    /// Relative weight, Docker's scale (1024 = default).
    pub cpu_shares: Option<u32>,
    /// CPU list as written to `cpuset.cpus`, e.g. `0-2,4`.
    pub cpuset: Option<String>,
    /// `pids.max`; `pids_limit = -1` gives `None`.
    pub pids_limit: Option<u64>,
    pub ulimits: BTreeMap<String, Ulimit>,
}

/// The rlimits a container gets where neither its `ulimits` nor `[host] default_ulimits` says otherwise: what a
/// container inherits from containerd on a Docker host (its unit's `LimitNOFILE`/`LimitNPROC`/`LimitCORE=infinity`,
/// `nofile` capped by the kernel's `fs.nr_open`, 1048576). Everything else is the kernel's default for PID 1.
pub const DOCKER_DEFAULT_ULIMITS: [(&str, Ulimit); 3] = [
    ("core", Ulimit { soft: -1, hard: -1 }),
    ("nofile", Ulimit { soft: 1_048_576, hard: 1_048_576 }),
    ("nproc", Ulimit { soft: -1, hard: -1 }),
];

impl Resources {
    /// Adds the host-wide defaults for every ulimit this container does not set itself (Docker's
    /// `default-ulimits`: per name, the container's own wins).
    pub fn add_default_ulimits(&mut self, defaults: &BTreeMap<String, Ulimit>) {
        for (name, limit) in defaults {
            self.ulimits.entry(name.clone()).or_insert(*limit);
        }
    }
}

/// A soft and a hard limit; -1 is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

pub(crate) fn read(reader: &mut Reader, table: &Table) -> Resources {
    let mut resources = Resources::default();
    if let Some(field) = table.get("memory") {
        resources.memory = reader.parse(&field, |text| match parse_byte_size(text) {
            Ok(bytes) if bytes < MIN_MEMORY => Err(format!("{text:?} is below the minimum of 6m")),
            other => other.map_err(|error| error.to_string()),
        });
    }
    if let Some(field) = table.get("cpus") {
        match reader.float(&field) {
            Some(cpus) if cpus > 0.0 && cpus.is_finite() => resources.cpus = Some(cpus),
            Some(_) => reader.error(
                field.node.span(),
                &field.path,
                format!("{} is not a number of CPUs above 0, like 1.5", describe(field.node)),
            ),
            None => {}
        }
    }
    resources.cpu_shares = table
        .get("cpu_shares")
        .and_then(|field| reader.integer_in(&field, 2, 262_144))
        .and_then(|shares| u32::try_from(shares).ok());
    resources.cpuset = table.get("cpuset").and_then(|field| reader.parse(&field, parse_cpuset));
    if let Some(field) = table.get("pids_limit") {
        match reader.integer(&field) {
            Some(-1) | None => {}
            Some(limit) if limit > 0 => resources.pids_limit = u64::try_from(limit).ok(),
            Some(limit) => reader.error(
                field.node.span(),
                &field.path,
                format!("{limit} is not -1 (unlimited) or a number above 0"),
            ),
        }
    }
    if let Some(field) = table.get("ulimits") {
        resources.ulimits = ulimits(reader, &field);
    }
    resources
}

/// A `ulimits` table (a container's, or `[host] default_ulimits`): each name checked, each value a limit.
pub(crate) fn ulimits(reader: &mut Reader, field: &Field) -> BTreeMap<String, Ulimit> {
    let mut ulimits = BTreeMap::new();
    let Some(table) = reader.map(field) else { return ulimits };
    for (name, key_span, value) in table.entries() {
        if !ULIMITS.contains(&name) {
            reader.error(key_span, &value.path, format!("unknown ulimit; expected one of {}", ULIMITS.join(", ")));
            continue;
        }
        let limit = match value.node.get_ref() {
            DeValue::Integer(_) => reader
                .integer(&value)
                .and_then(|limit| check_limit(limit).ok())
                .map(|limit| Ulimit { soft: limit, hard: limit }),
            DeValue::String(_) => reader.parse(&value, parse_ulimit),
            _ => {
                reader.wrong_type(&value, "an integer or \"SOFT:HARD\"");
                None
            }
        };
        if let Some(limit) = limit {
            ulimits.insert(name.to_owned(), limit);
        }
    }
    ulimits
}

fn check_limit(limit: i64) -> Result<i64, String> {
    if limit >= -1 {
        Ok(limit)
    } else {
        Err(format!("{limit} is not a limit (-1 for unlimited, or 0 and above)"))
    }
}

fn parse_ulimit(text: &str) -> Result<Ulimit, String> {
    let error = || format!("{text:?} is not a ulimit like \"1024:2048\" (SOFT:HARD, -1 for unlimited, soft <= hard)");
    let number = |part: &str| part.parse::<i64>().ok().filter(|limit| *limit >= -1);
    let (soft, hard) = match text.split_once(':') {
        Some((soft, hard)) => (number(soft), number(hard)),
        None => (number(text), number(text)),
    };
    let (Some(soft), Some(hard)) = (soft, hard) else { return Err(error()) };
    let unlimited = |limit: i64| if limit == -1 { i64::MAX } else { limit };
    if unlimited(soft) > unlimited(hard) {
        return Err(error());
    }
    Ok(Ulimit { soft, hard })
}

/// `0-2,4`: CPU numbers and ascending ranges, comma-separated.
fn parse_cpuset(text: &str) -> Result<String, String> {
    let error = || format!("{text:?} is not a CPU list like \"0-2,4\"");
    for part in text.split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let number = |part: &str| {
            (!part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()))
                .then(|| part.parse::<u32>().ok())
                .flatten()
        };
        match (number(first), number(last)) {
            (Some(first), Some(last)) if first <= last => {}
            _ => return Err(error()),
        }
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpusets_and_ulimits() {
        assert!(parse_cpuset("0-2,4").is_ok());
        for bad in ["", "2-0", "0,,1", "a", "0-"] {
            assert!(parse_cpuset(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_ulimit("1024:2048"), Ok(Ulimit { soft: 1024, hard: 2048 }));
        assert_eq!(parse_ulimit("100:-1"), Ok(Ulimit { soft: 100, hard: -1 }));
        assert!(parse_ulimit("2048:1024").is_err());
        assert!(parse_ulimit("x").is_err());
    }
}
