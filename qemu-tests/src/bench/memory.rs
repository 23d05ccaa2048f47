//! The memory figure: PSS of the host's own processes (PID 1 and what it adds per container), from each side's
//! console report, summed and broken down by role.

use std::collections::BTreeMap;

/// One process from a report: `pss <pid> <ppid> <kB> [<cgroup>] <comm>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub pid: u32,
    pub ppid: u32,
    pub pss_kib: u64,
    /// keel's meter reports the cgroup (`0::/keel/<name>`); the peer's report does not need it.
    pub cgroup: Option<String>,
    pub comm: String,
}

/// Parses the words after `pss ` (`with_cgroup`: keel's meter format).
pub fn parse_sample(words: &str, with_cgroup: bool) -> Option<Sample> {
    let mut parts = words.split_whitespace();
    let pid = parts.next()?.parse().ok()?;
    let ppid = parts.next()?.parse().ok()?;
    let pss_kib = parts.next()?.parse().ok()?;
    let cgroup = if with_cgroup { Some(parts.next()?.to_owned()) } else { None };
    let comm = parts.collect::<Vec<_>>().join(" ");
    Some(Sample { pid, ppid, pss_kib, cgroup, comm })
}

/// A total and what it is made of, plus processes seen but not counted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Breakdown {
    pub total_kib: u64,
    /// Role → (processes, kB).
    pub parts: BTreeMap<String, (usize, u64)>,
    pub not_counted: BTreeMap<String, (usize, u64)>,
}

impl Breakdown {
    fn add(&mut self, role: String, kib: u64, counted: bool) {
        let map = if counted { &mut self.parts } else { &mut self.not_counted };
        let entry = map.entry(role).or_default();
        entry.0 += 1;
        entry.1 += kib;
        if counted {
            self.total_kib += kib;
        }
    }

    /// `total MiB` and its parts, e.g. `31.2 MiB = PID 1 9.1 + 21 × init 22.1`.
    pub fn summary(&self) -> String {
        format!("{} = {}", mib(self.total_kib), describe(&self.parts))
    }

    /// The processes seen but left out of the total.
    pub fn excluded(&self) -> String {
        describe(&self.not_counted)
    }
}

fn describe(parts: &BTreeMap<String, (usize, u64)>) -> String {
    let words: Vec<String> = parts
        .iter()
        .map(|(role, (count, kib))| match count {
            1 => format!("{role} {:.1}", *kib as f64 / 1024.0),
            n => format!("{n} × {role} {:.1}", *kib as f64 / 1024.0),
        })
        .collect();
    if words.is_empty() {
        "none".to_owned()
    } else {
        words.join(" + ")
    }
}

/// `12.3 MiB`.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// keel: PID 1 plus every child of PID 1 (the `init = true` containers' `keel-container-init` sits in its container's
/// cgroup; any other child would be a helper too). The meter's own init is left out: it exists only to take the
/// measurement.
///
/// The meter reads `/proc/<pid>/cgroup` from inside its own cgroup namespace, so paths are relative to its
/// cgroup: `0::/` is the meter itself, `0::/../log1` the container `log1`, and PID 1 sits further up.
pub fn keel_breakdown(samples: &[Sample]) -> Breakdown {
    let mut breakdown = Breakdown::default();
    for sample in samples {
        if sample.pid == 1 {
            breakdown.add("PID 1".to_owned(), sample.pss_kib, true);
        } else if sample.ppid == 1 {
            match sample.cgroup.as_deref() {
                Some("0::/") => breakdown.add("meter's init".to_owned(), sample.pss_kib, false),
                Some(cgroup) if cgroup.starts_with("0::/../") && !cgroup.starts_with("0::/../../") => {
                    breakdown.add("container init".to_owned(), sample.pss_kib, true)
                }
                _ => breakdown.add(format!("other child {}", sample.comm), sample.pss_kib, true),
            }
        }
    }
    breakdown
}

/// The peer: systemd (PID 1), dockerd, containerd, every containerd-shim, docker-init and docker-proxy. The
/// journal and the DHCP client are listed but not counted (keel's PID 1 does both jobs itself, so this favours
/// the peer); the containers' own processes and the bench's report script are left out entirely.
pub fn peer_breakdown(samples: &[Sample]) -> Breakdown {
    let mut breakdown = Breakdown::default();
    for sample in samples {
        let role = match sample.comm.as_str() {
            _ if sample.pid == 1 => "systemd",
            "dockerd" => "dockerd",
            "containerd" => "containerd",
            // comm is cut at 15 bytes: `containerd-shim-runc-v2` reads `containerd-shim`.
            comm if comm.starts_with("containerd-shi") => "shim",
            "docker-init" => "docker-init",
            "docker-proxy" => "docker-proxy",
            "systemd-journal" | "dhclient" => {
                breakdown.add(sample.comm.clone(), sample.pss_kib, false);
                continue;
            }
            _ => continue,
        };
        breakdown.add(role.to_owned(), sample.pss_kib, true);
    }
    breakdown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keel_counts_pid1_and_its_children_except_the_meter() {
        let samples: Vec<Sample> = [
            "1 0 9000 0::/../../init init",
            "300 1 1100 0::/../hello container-hello",
            "301 1 1000 0::/../log1 container-log1",
            "302 1 1200 0::/ container-meter",
            "303 300 200 0::/../hello sh",
        ]
        .iter()
        .filter_map(|w| parse_sample(w, true))
        .collect();
        let b = keel_breakdown(&samples);
        assert_eq!(b.total_kib, 11100);
        assert_eq!(b.parts["container init"], (2, 2100));
        assert_eq!(b.not_counted["meter's init"], (1, 1200));
        assert_eq!(b.summary(), "10.8 MiB = PID 1 8.8 + 2 × container init 2.1");
    }

    #[test]
    fn peer_counts_the_docker_stack() {
        let samples: Vec<Sample> = [
            "1 0 7000 systemd",
            "200 1 60000 dockerd",
            "201 1 40000 containerd",
            "300 1 5000 containerd-shim",
            "301 300 100 docker-init",
            "302 301 50 sh",
            "150 1 3000 systemd-journal",
        ]
        .iter()
        .filter_map(|w| parse_sample(w, false))
        .collect();
        let b = peer_breakdown(&samples);
        assert_eq!(b.total_kib, 112100);
        assert_eq!(b.parts.len(), 5);
        assert_eq!(b.excluded(), "systemd-journal 2.9");
    }
}
