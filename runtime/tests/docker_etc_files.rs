//! `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` as `docker run` makes them, read from inside the container.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use keel_fixtures::containers::TestHost;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

fn host_file(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn host_network_shows_the_hosts_hostname_hosts_and_resolv_conf() {
    let host = TestHost::new(Path::new(CACHE));
    let out =
        host.shell("hostnet", "hostname; echo $HOSTNAME; echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf", "");
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let host_name = host_file("/proc/sys/kernel/hostname").trim().to_owned();
    let expected =
        format!("{host_name}\n{host_name}\n---\n{}---\n{}", host_file("/etc/hosts"), host_file("/etc/resolv.conf"));
    assert_eq!(out.stdout, expected);

    // The config's hostname still wins.
    let named = host.shell("hostnet", "hostname", "hostname = \"web\"");
    assert_eq!(named.stdout, "web\n");
}

/// The stripping itself is unit-tested in `etc_files.rs`: a host whose resolv.conf has no loopback name server
/// (this one may not) gets it unchanged.
#[test]
fn own_network_gets_generated_hosts_and_no_loopback_name_servers() {
    let mut host = TestHost::new(Path::new(CACHE));
    // A host whose resolver is a local stub (systemd-resolved's 127.0.0.53) beside a real one: the container,
    // which has no such loopback, gets only the real one.
    let etc = host.temp.path().join("host-etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("resolv.conf"),
        "nameserver 127.0.0.53\nnameserver ::1\nnameserver 10.9.8.7\nsearch example.internal\n",
    )
    .unwrap();
    host.host_etc = etc;
    let out = host.shell(
        "ownnet",
        "hostname; grep -c 'localhost own' /etc/hosts; cat /etc/resolv.conf",
        "network = \"none\"",
    );
    assert!(out.stdout.starts_with("ownnet"), "the container's name: {}", out.stdout);
    let resolv_conf = out.stdout.lines().skip(2).map(|line| format!("{line}\n")).collect::<String>();
    assert_eq!(resolv_conf, "nameserver 10.9.8.7\nsearch example.internal\n");
    assert_eq!(out.stdout.lines().nth(1), Some("1"), "{}", out.stdout);
}

#[test]
fn read_only_root_makes_the_etc_files_read_only() {
    let host = TestHost::new(Path::new(CACHE));
    let script =
        "for f in hosts hostname resolv.conf; do echo x >> /etc/$f && echo $f-written || echo $f-refused; done";
    let out = host.shell("roetc", script, "read_only = true");
    assert_eq!(out.stdout, "hosts-refused\nhostname-refused\nresolv.conf-refused\n", "stderr: {}", out.stderr);
    let writable = host.shell("rwetc", script, "");
    assert_eq!(writable.stdout, "hosts-written\nhostname-written\nresolv.conf-written\n");
}
