//! Acceptance tests of the user-data schema: the complete example, every section, and every kind of error with
//! its exact message, line and column.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use keel_config::containers::healthcheck::HealthTest;
use keel_config::containers::mounts::VolumeSource;
use keel_config::containers::process::CommandLine;
use keel_config::containers::restart::RestartPolicy;
use keel_config::values::capability::Capability;
use keel_config::values::signal::Signal;
use keel_config::{CaSource, InterfaceMatch, NetworkMode, SyslogDestination, SyslogFormat, SyslogTarget, UserData};

/// The errors of `text`, one string per error.
fn errors(text: &str) -> Vec<String> {
    match UserData::parse("user-data", text) {
        Ok(user_data) => panic!("expected errors, parsed {user_data:#?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn error(text: &str) -> String {
    let all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all[0].clone()
}

#[test]
fn empty_file_is_all_defaults() {
    let user_data = UserData::parse("user-data", "").unwrap();
    assert_eq!(user_data, UserData::default());
    assert!(user_data.network.interfaces.is_empty());
    assert_eq!(user_data.syslog.queue, 10_000);
    assert_eq!(user_data.syslog.facility.to_string(), "daemon");
    assert_eq!(user_data.api.socket_mode, 0o600);
    assert_eq!(user_data.update.health_timeout, Duration::from_secs(300));
    assert_eq!(user_data.update.health_window, Duration::from_secs(60));
}

#[test]
fn complete_example_parses() {
    let user_data = UserData::parse("example.toml", include_str!("data/example.toml")).unwrap();
    assert_eq!(user_data.host.hostname.as_deref(), Some("web-1"));

    let [first, second] = &user_data.network.interfaces[..] else { panic!("two interfaces") };
    assert_eq!(first.matcher, InterfaceMatch::Name("en*".into()));
    assert!(first.dhcp);
    assert_eq!(first.dns.len(), 2);
    assert_eq!(second.matcher, InterfaceMatch::Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
    assert_eq!(second.addresses[0].to_string(), "192.168.1.10/24");
    assert_eq!(second.gateway, Some(Ipv4Addr::new(192, 168, 1, 1)));
    assert_eq!(second.routes[0].destination.to_string(), "10.1.0.0/16");
    assert_eq!(second.routes[0].via, Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 254))));
    assert_eq!(second.routes[0].metric, Some(100));
    assert_eq!(second.mtu, Some(9000));

    assert_eq!(
        user_data.syslog.targets,
        [SyslogDestination::new(SyslogTarget::Udp { host: "192.168.1.2".into(), port: 514 })]
    );
    assert_eq!(user_data.syslog.facility.0, 16);
    assert_eq!(user_data.api.tcp.unwrap().port(), 2375);
    assert_eq!(user_data.api.socket_mode, 0o660);
    assert_eq!(user_data.update.url.as_deref(), Some("https://updates.example.com/keel/stable.json"));
    assert_eq!(user_data.update.reboot, keel_config::update::RebootPolicy::Window);
    assert_eq!(user_data.update.window.unwrap().start, 2 * 3600);
    assert_eq!((user_data.logs.max_size, user_data.logs.max_files), (10 << 20, 3));
    assert_eq!(user_data.update.health_window, Duration::from_secs(90));
    assert!(user_data.registries["registry.local:5000"].insecure);
    assert_eq!(user_data.registries["ghcr.io"].credentials.as_ref().unwrap().username, "keel-bot");

    assert_eq!(user_data.container_order, ["db", "web"]);
    assert_eq!(user_data.start_order(), ["db", "web"]);
    let db = &user_data.containers["db"];
    assert_eq!(db.env[0], ("POSTGRES_PASSWORD".into(), "example".into()), "file order");
    assert_eq!(db.volumes[0].source, VolumeSource::Named("pgdata".into()));
    assert_eq!(db.stop_signal, Some(Signal(2)));
    assert_eq!(db.stop_timeout, 30);
    let db_check = db.healthcheck.as_ref().unwrap();
    assert_eq!(db_check.test, Some(HealthTest::Command(vec!["pg_isready".into(), "-U".into(), "postgres".into()])));
    assert_eq!(db_check.retries, 5);

    let web = &user_data.containers["web"];
    assert_eq!(web.command, Some(CommandLine::Exec(vec!["nginx".into(), "-g".into(), "daemon off;".into()])));
    assert_eq!(web.env, [("MODE".to_owned(), "production".to_owned())]);
    assert_eq!(web.restart, RestartPolicy::OnFailure { max_retries: Some(5) });
    assert_eq!(web.resources.memory, Some(512 << 20));
    assert_eq!(web.resources.cpus, Some(1.5));
    assert_eq!(web.resources.pids_limit, Some(200));
    assert_eq!(web.resources.ulimits["nofile"].hard, 2048);
    assert_eq!(web.resources.ulimits["nproc"].soft, 512);
    assert_eq!(web.network, NetworkMode::Host);
    assert!(web.volumes[0].read_only);
    assert_eq!(web.cap_drop, [Capability::All]);
    assert_eq!(web.cap_add[1].to_string(), "CAP_CHOWN");
    assert_eq!(web.labels["com.example.team"], "web");
    assert_eq!(web.depends_on, ["db"]);
    assert_eq!(web.dependency_condition("db"), keel_config::containers::dependencies::DependencyCondition::Healthy);
    let check = web.healthcheck.as_ref().unwrap();
    assert_eq!(check.test, Some(HealthTest::Shell("curl -fsS http://localhost/ || exit 1".into())));
    assert_eq!(check.start_period, Duration::from_secs(90));
}

#[test]
fn container_order_is_file_order() {
    let text = "[containers.zeta]\nimage = \"a\"\n[containers.alpha]\nimage = \"b\"\ndepends_on = [\"zeta\"]\n";
    let user_data = UserData::parse("user-data", text).unwrap();
    assert_eq!(user_data.container_order, ["zeta", "alpha"]);
    let text = "[containers.zeta]\nimage = \"a\"\ndepends_on = [\"alpha\"]\n[containers.alpha]\nimage = \"b\"\n";
    assert_eq!(UserData::parse("user-data", text).unwrap().start_order(), ["alpha", "zeta"]);
}

#[test]
fn shell_form_command() {
    let text = "[containers.a]\nimage = \"busybox\"\ncommand = \"echo $HOME\"\n";
    let user_data = UserData::parse("user-data", text).unwrap();
    let command = user_data.containers["a"].command.as_ref().unwrap();
    assert_eq!(command.argv(), ["/bin/sh", "-c", "echo $HOME"]);
}

#[test]
fn syntax_error() {
    assert_eq!(
        error("[host]\nhostname = \"web\n"),
        "user-data:2:16: syntax error: invalid basic string, expected `\"`"
    );
}

#[test]
fn unknown_keys() {
    assert_eq!(
        error("[host]\nhostnme = \"x\"\n"),
        "user-data:2:1: host.hostnme: unknown key; expected one of hostname, shutdown_timeout, default_ulimits"
    );
    assert_eq!(
        error("[hots]\n"),
        "user-data:1:2: hots: unknown key; expected one of host, network, syslog, logs, api, update, registries, containers"
    );
    assert_eq!(
        error("[containers.web]\nimage = \"nginx\"\nrestart_policy = \"no\"\n"),
        format!("user-data:3:1: containers.web.restart_policy: unknown key; expected one of {}", CONTAINER_KEYS)
    );
}

const CONTAINER_KEYS: &str = "image, entrypoint, command, env, workdir, user, hostname, restart, memory, cpus, \
cpu_shares, cpuset, pids_limit, ulimits, network, volumes, tmpfs, read_only, cap_add, cap_drop, privileged, \
no_new_privileges, seccomp, devices, labels, depends_on, healthcheck, stop_signal, stop_timeout, init, required, \
log_max_size, log_max_files";

#[test]
fn wrong_types() {
    let text = "[[network.interface]]\nname = \"eth0\"\ndhcp = true\nmtu = \"big\"\n";
    assert_eq!(error(text), "user-data:4:7: network.interface[0].mtu: \"big\" is not an integer");
    assert_eq!(error("host = 3\n"), "user-data:1:8: host: 3 is not a table");
    assert_eq!(
        error("[containers.a]\nimage = \"x\"\nprivileged = \"yes\"\n"),
        "user-data:3:14: containers.a.privileged: \"yes\" is not true or false"
    );
    assert_eq!(
        error("[containers.a]\nimage = \"x\"\ncommand = 5\n"),
        "user-data:3:11: containers.a.command: 5 is not an array of strings (exec form) or a string (run by /bin/sh -c)"
    );
}

#[test]
fn seccomp_is_default_unconfined_or_an_absolute_path() {
    use keel_config::Seccomp;
    let seccomp = |value: &str| {
        let text = format!("[containers.a]\nimage = \"x\"\nseccomp = {value}\n");
        UserData::parse("user-data", &text).map(|mut data| data.containers.remove("a").unwrap().seccomp)
    };
    assert_eq!(seccomp("\"default\"").unwrap(), Seccomp::Default);
    assert_eq!(seccomp("\"unconfined\"").unwrap(), Seccomp::Unconfined);
    assert_eq!(seccomp("\"/etc/p.json\"").unwrap(), Seccomp::Profile("/etc/p.json".into()));
    assert_eq!(
        error("[containers.a]\nimage = \"x\"\nseccomp = \"p.json\"\n"),
        "user-data:3:11: containers.a.seccomp: \"p.json\" is not one of default, unconfined or an absolute path to a \
         JSON profile"
    );
}

#[test]
fn bad_enum() {
    let text = "[containers.web]\nimage = \"nginx\"\n\n\n\n\n\n\n\n\n\n\n\nrestart  = \"sometimes\"\n";
    assert_eq!(
        error(text),
        "user-data:14:12: containers.web.restart: \"sometimes\" is not one of no, on-failure[:N], always, unless-stopped"
    );
    assert_eq!(
        error("[syslog]\nfacility = \"daemons\"\n"),
        "user-data:2:12: syslog.facility: \"daemons\" is not one of kern, user, mail, daemon, auth, syslog, lpr, news, \
uucp, cron, authpriv, ftp, local0, local1, local2, local3, local4, local5, local6, local7"
    );
}

#[test]
fn bad_cidr_and_mac_and_addresses() {
    let text = "[[network.interface]]\nmac = \"52:54:00:12:34\"\naddresses = [\"10.0.0.1\"]\ngateway = \"fd00::1\"\n";
    assert_eq!(
        errors(text),
        [
            "user-data:2:7: network.interface[0].mac: \"52:54:00:12:34\" is not a MAC address like 52:54:00:12:34:56",
            "user-data:3:14: network.interface[0].addresses[0]: \"10.0.0.1\" is not an address with a prefix length, \
like 192.168.1.10/24 or fd00::10/64",
            "user-data:4:11: network.interface[0].gateway: \"fd00::1\" is not an IPv4 address like 192.168.1.1",
        ]
    );
    let text = "[[network.interface]]\nname = \"eth0\"\naddresses = [\"10.0.0.5/24\"]\nroutes = [{ via = \"10.0.0.1\" }, { to = \"fd00::/8\", via = \"10.0.0.1\" }]\n";
    assert_eq!(
        errors(text),
        [
            "user-data:4:11: network.interface[0].routes[0].to: required key is missing",
            "user-data:4:58: network.interface[0].routes[1].via: \"10.0.0.1\" is not of the same address family as to = \"fd00::/8\"",
        ]
    );
}

#[test]
fn interface_match_and_address_rules() {
    let both = "[[network.interface]]\nname = \"eth0\"\nmac = \"52:54:00:12:34:56\"\ndhcp = true\n";
    assert_eq!(error(both), "user-data:3:7: network.interface[0]: name and mac are exclusive; give exactly one");
    let neither = "[[network.interface]]\ndhcp = true\n";
    assert_eq!(error(neither), "user-data:1:1: network.interface[0]: neither name nor mac; give exactly one");
    let nothing = "[network]\n[[network.interface]]\nname = \"eth0\"\nmtu = 1500\n";
    assert_eq!(
        error(nothing),
        "user-data:2:1: network.interface[0]: neither dhcp = true nor addresses; give one or both"
    );
    let mtu = "[[network.interface]]\nname = \"eth0\"\ndhcp = true\nmtu = 67\n";
    assert_eq!(error(mtu), "user-data:4:7: network.interface[0].mtu: 67 is not between 68 and 65535");
    let single = "[network.interface]\nname = \"eth0\"\n";
    assert_eq!(
        error(single),
        "user-data:1:1: network.interface: a table is not an array of tables; write [[network.interface]]"
    );
}

#[test]
fn bad_hostname() {
    assert_eq!(
        error("[host]\nhostname = \"web_1\"\n"),
        "user-data:2:12: host.hostname: host name \"web_1\" has an invalid label \"web_1\": labels are 1-63 letters, \
digits or '-', not starting or ending with '-'"
    );
}

#[test]
fn missing_required_key() {
    assert_eq!(
        error("[containers.web]\nrestart = \"no\"\n"),
        "user-data:1:1: containers.web.image: required key is missing"
    );
}

#[test]
fn registry_credentials_come_in_pairs() {
    assert_eq!(
        error("[registries.\"ghcr.io\"]\nusername = \"bot\"\n"),
        "user-data:2:12: registries.\"ghcr.io\": username without password; give both or neither"
    );
    assert_eq!(
        error("[registries.\"bad host\"]\ninsecure = true\n"),
        "user-data:1:13: registries.\"bad host\": \"bad host\" is not a registry HOST or HOST:PORT like ghcr.io or 10.0.0.5:5000"
    );
}

#[test]
fn depends_on_unknown_and_cycles() {
    let unknown = "[containers.web]\nimage = \"nginx\"\ndepends_on = [\"db\"]\n";
    assert_eq!(
        error(unknown),
        "user-data:3:15: containers.web.depends_on[0]: \"db\" is not a container in this file; containers are web"
    );
    let cycle = "[containers.web]\nimage = \"a\"\ndepends_on = [\"app\"]\n\
[containers.app]\nimage = \"b\"\ndepends_on = [\"cache\"]\n\
[containers.cache]\nimage = \"c\"\ndepends_on = [\"web\"]\n";
    assert_eq!(
        error(cycle),
        "user-data:9:15: containers.cache.depends_on[0]: dependency cycle web -> app -> cache -> web"
    );
}

#[test]
fn bad_durations_sizes_and_values() {
    let text = "[containers.web]\nimage = \"nginx\"\nmemory = \"12q\"\nhealthcheck = { interval = \"5x\" }\n\
network = \"bridge\"\ncpus = 0\ncap_add = [\"NET_ADMINS\"]\nvolumes = [\"data:rel\"]\nstop_signal = \"SIGFOO\"\n";
    assert_eq!(
        errors(text),
        [
            "user-data:3:10: containers.web.memory: \"12q\" is not a size like 512m or 1g (a whole number with suffix b, k, m or g)",
            "user-data:4:28: containers.web.healthcheck.interval: \"5x\" is not a duration like 30s, 1m30s or 500ms (units h, m, s, ms, us, ns)",
            "user-data:5:11: containers.web.network: bridge networking is not supported yet; use host or none",
            "user-data:6:8: containers.web.cpus: 0 is not a number of CPUs above 0, like 1.5",
            "user-data:7:12: containers.web.cap_add[0]: \"NET_ADMINS\" is not a Linux capability like NET_ADMIN or CAP_SYS_TIME, or ALL",
            "user-data:8:12: containers.web.volumes[0]: \"data:rel\" is not SRC:DST[:ro|rw]: DST is an absolute path",
            "user-data:9:15: containers.web.stop_signal: \"SIGFOO\" is not a signal like SIGTERM, TERM, SIGRTMIN+3 or a number from 1 to 64",
        ]
    );
    assert_eq!(
        error("[update]\nhealth_timeout = \"5 minutes\"\n"),
        "user-data:2:18: update.health_timeout: \"5 minutes\" is not a duration like 30s, 1m30s or 500ms (units h, m, s, ms, us, ns)"
    );
    assert_eq!(
        error("[update]\nhealth_timeout = \"1m\"\nhealth_window = \"2m\"\n"),
        "user-data:3:17: update.health_window: 120s is not shorter than health_timeout (60s): the health gate could never pass"
    );
    assert_eq!(
        error("[update]\nhealth_window = \"0s\"\n"),
        "user-data:2:17: update.health_window: \"0s\" is zero; the health gate needs time"
    );
}

#[test]
fn other_sections_validate_their_values() {
    let text = "[syslog]\ntarget = \"http://x:1\"\nqueue = 0\n[api]\ntcp = \"localhost\"\nsocket_mode = \"0868\"\n\
[update]\nurl = \"ftp://x\"\n[containers.\"-x\"]\nimage = \"a\"\n";
    assert_eq!(
        errors(text),
        [
            "user-data:2:10: syslog.target: \"http://x:1\" is not a syslog target like udp://host:514, tcp://host:601, tls://host:6514 or unix:///dev/log",
            "user-data:3:9: syslog.queue: 0 is not between 1 and 1000000",
            "user-data:5:7: api.tcp: \"localhost\" is not a listen address like 0.0.0.0:2375 or [::]:2375",
            "user-data:6:15: api.socket_mode: \"0868\" is not a permission mode like \"0660\" (octal, at most 0777)",
            "user-data:8:7: update.url: \"ftp://x\" is not an http:// or https:// URL like https://updates.example.com/keel/stable.json",
            "user-data:9:13: containers.-x: \"-x\" is not a container name; names are [a-zA-Z0-9][a-zA-Z0-9_.-]*",
        ]
    );
}

#[test]
fn healthcheck_forms() {
    let text = "[containers.a]\nimage = \"x\"\nhealthcheck = { test = [\"CMD-SHELL\"] }\n";
    assert_eq!(
        error(text),
        "user-data:3:24: containers.a.healthcheck.test: wrong number of items after \"CMD-SHELL\"; the forms are \
[\"CMD\", arg, …], [\"CMD-SHELL\", line] or [\"NONE\"]"
    );
    let text = "[containers.a]\nimage = \"x\"\nhealthcheck = { test = [\"NONE\"], retries = -1 }\n";
    assert_eq!(error(text), "user-data:3:44: containers.a.healthcheck.retries: -1 is not between 0 and 4294967295");
}

#[test]
fn multiple_errors_in_file_order() {
    let text = "\
[host]
hostname = \"-bad\"
colour = \"blue\"

[[network.interface]]
name = \"eth0\"
mtu = \"big\"

[containers.web]
image = \"nginx\"
restart = \"sometimes\"
memory = \"lots\"
x = = 1
";
    assert_eq!(
        errors(text),
        [
            "user-data:2:12: host.hostname: host name \"-bad\" has an invalid label \"-bad\": labels are 1-63 letters, \
digits or '-', not starting or ending with '-'",
            "user-data:3:1: host.colour: unknown key; expected one of hostname, shutdown_timeout, default_ulimits",
            "user-data:5:1: network.interface[0]: neither dhcp = true nor addresses; give one or both",
            "user-data:7:7: network.interface[0].mtu: \"big\" is not an integer",
            "user-data:11:11: containers.web.restart: \"sometimes\" is not one of no, on-failure[:N], always, unless-stopped",
            "user-data:12:10: containers.web.memory: \"lots\" is not a size like 512m or 1g (a whole number with suffix b, k, m or g)",
            &("user-data:13:1: containers.web.x: unknown key; expected one of ".to_owned() + CONTAINER_KEYS),
            "user-data:13:5: syntax error: extra `=`, expected nothing",
            "user-data:13:7: syntax error: unexpected key or value, expected newline, `#`",
        ]
    );
}

#[test]
fn docs_show_the_complete_example() {
    let docs = include_str!("../../docs/config.md");
    assert!(docs.contains(include_str!("data/example.toml")), "docs/config.md no longer holds tests/data/example.toml");
}

#[test]
fn every_section_is_acted_on_without_warnings() {
    let text =
        "[host]\nhostname = \"a\"\n\n[api]\ntcp = \"0.0.0.0:2375\"\n\n[update]\nurl = \"https://u.example/c.json\"\n\
                allow_downgrade = true\n\n[containers.web]\nimage = \"nginx\"\nrequired = true\n";
    let user_data = UserData::parse("user-data", text).unwrap();
    assert!(user_data.warnings.is_empty(), "{:?}", user_data.warnings);
}

#[test]
fn shutdown_timeout_defaults_to_dockers_and_is_bounded() {
    assert_eq!(UserData::parse("user-data", "").unwrap().host.shutdown_timeout, 15);
    let user_data = UserData::parse("user-data", "[host]\nshutdown_timeout = 40\n").unwrap();
    assert_eq!(user_data.host.shutdown_timeout, 40);
    assert_eq!(
        error("[host]\nshutdown_timeout = -1\n"),
        "user-data:2:20: host.shutdown_timeout: -1 is not between 0 and 3600"
    );
}

#[test]
fn health_check_durations_below_a_millisecond_are_refused_and_fast_intervals_warned_about() {
    let text = "[containers.web]\nimage = \"nginx\"\nhealthcheck = { interval = \"1ns\", timeout = \"999us\" }\n";
    assert_eq!(
        errors(text),
        [
            "user-data:3:28: containers.web.healthcheck.interval: 1ns is below the minimum of 1ms (0 means the default)",
            "user-data:3:45: containers.web.healthcheck.timeout: 999µs is below the minimum of 1ms (0 means the default)",
        ]
    );
    let text = "[containers.web]\nimage = \"nginx\"\nhealthcheck = { interval = \"1ms\", timeout = \"0s\" }\n";
    let user_data = UserData::parse("user-data", text).unwrap();
    let warnings: Vec<String> = user_data.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["user-data:3:28: containers.web.healthcheck.interval: 1ms is shorter than keel probes: every 250ms instead"]
    );
    assert_eq!(user_data.containers["web"].healthcheck.as_ref().unwrap().interval, Duration::from_millis(1));
}

#[test]
fn syslog_takes_several_receivers_each_with_its_format_and_ca() {
    let text = r#"[syslog]
format = "rfc3164"
ca = "/etc/keel/syslog-ca.pem"
target = [
  "unix:///dev/log",
  { url = "tls://logs.example.com:6514", format = "rfc5424", ca = """
-----BEGIN CERTIFICATE-----
MIIB
-----END CERTIFICATE-----
""" },
  "udp://10.0.0.9:514",
]
"#;
    let user_data = UserData::parse("user-data", text).unwrap();
    let [local, tls, udp] = &user_data.syslog.targets[..] else { panic!("three receivers: {user_data:?}") };
    assert_eq!(local.target, SyslogTarget::Unix("/dev/log".into()));
    assert_eq!(tls.target, SyslogTarget::Tls { host: "logs.example.com".into(), port: 6514 });
    assert_eq!(tls.format, SyslogFormat::Rfc5424);
    assert!(matches!(&tls.ca, Some(CaSource::Pem(pem)) if pem.contains("MIIB")));
    assert_eq!(udp.format, SyslogFormat::Rfc3164);
    assert_eq!(udp.ca, Some(CaSource::File("/etc/keel/syslog-ca.pem".into())));
}

#[test]
fn syslog_takes_at_most_eight_receivers() {
    let targets: Vec<String> = (1..=9).map(|port| format!("\"udp://h:{port}\"")).collect();
    let text = format!("[syslog]\ntarget = [{}]\n", targets.join(", "));
    assert_eq!(error(&text), "user-data:2:10: syslog.target: 9 receivers; at most 8");
}

#[test]
fn syslog_receivers_are_checked_each_where_it_is_written() {
    let text = "[syslog]\nformat = \"json\"\ntarget = [\"tcp://a:601\", { format = \"rfc3164\" }, { url = \"tls://b:6514\", ca = \"ca.pem\", port = 1 }, \"tls://c\"]\n";
    assert_eq!(
        errors(text),
        [
            "user-data:2:10: syslog.format: \"json\" is not a syslog format: \"rfc5424\" or \"rfc3164\"",
            "user-data:3:26: syslog.target[1].url: required key is missing",
            "user-data:3:79: syslog.target[2].ca: \"ca.pem\" is neither a PEM certificate (-----BEGIN CERTIFICATE-----…) nor an absolute path to one",
            "user-data:3:89: syslog.target[2].port: unknown key; expected one of url, format, ca",
            "user-data:3:101: syslog.target[3]: \"tls://c\" is not a syslog target like udp://host:514, tcp://host:601, tls://host:6514 or unix:///dev/log",
        ]
    );
}

/// Docker's `--default-ulimit` and `--ulimit`: the host-wide default applies per name where the container sets
/// nothing of its own, and a bad value is an error at its line and column.
#[test]
fn host_default_ulimits_apply_per_name_under_the_containers_own() {
    let text = "[host]\ndefault_ulimits = { nofile = \"4096:8192\", memlock = -1 }\n\
                [containers.web]\nimage = \"nginx\"\nulimits = { nofile = \"1024:2048\" }\n\
                [containers.db]\nimage = \"postgres\"\n";
    let user_data = UserData::parse("user-data", text).unwrap();
    let web = &user_data.containers["web"].resources.ulimits;
    assert_eq!((web["nofile"].soft, web["nofile"].hard, web["memlock"].hard), (1024, 2048, -1));
    let db = &user_data.containers["db"].resources.ulimits;
    assert_eq!((db["nofile"].soft, db["nofile"].hard), (4096, 8192));
    assert_eq!(
        error("[host]\ndefault_ulimits = { nofile = \"9:1\" }\n"),
        "user-data:2:30: host.default_ulimits.nofile: \"9:1\" is not a ulimit like \"1024:2048\" (SOFT:HARD, -1 for \
         unlimited, soft <= hard)"
    );
    assert_eq!(
        error("[host]\ndefault_ulimits = { files = 1 }\n"),
        "user-data:2:21: host.default_ulimits.files: unknown ulimit; expected one of as, core, cpu, data, fsize, \
         locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack"
    );
}

/// Docker leaves `no_new_privs` off unless `--security-opt no-new-privileges` asks for it.
#[test]
fn no_new_privileges_is_off_unless_asked() {
    let text = "[containers.a]\nimage = \"x\"\n[containers.b]\nimage = \"x\"\nno_new_privileges = true\n";
    let user_data = UserData::parse("user-data", text).unwrap();
    assert!(!user_data.containers["a"].no_new_privileges);
    assert!(user_data.containers["b"].no_new_privileges);
}

/// Compose's `depends_on`: the short list means `started`; a table names each condition, in keel's words or
/// Compose's `service_*`; a wrong one is an error at its value.
#[test]
fn depends_on_conditions() {
    use keel_config::containers::dependencies::DependencyCondition;
    let text = "[containers.db]\nimage = \"x\"\n[containers.init]\nimage = \"x\"\n[containers.cache]\nimage = \"x\"\n\
                [containers.web]\nimage = \"x\"\ndepends_on = { db = \"healthy\", init = \"service_completed_successfully\", cache = \"started\" }\n\
                [containers.worker]\nimage = \"x\"\ndepends_on = [\"db\"]\n";
    let user_data = UserData::parse("user-data", text).unwrap();
    let web = &user_data.containers["web"];
    assert_eq!(web.depends_on, ["db", "init", "cache"]);
    assert_eq!(web.dependency_condition("db"), DependencyCondition::Healthy);
    assert_eq!(web.dependency_condition("init"), DependencyCondition::CompletedSuccessfully);
    assert_eq!(web.dependency_condition("cache"), DependencyCondition::Started);
    assert_eq!(user_data.containers["worker"].dependency_condition("db"), DependencyCondition::Started);
    assert_eq!(user_data.start_order(), ["db", "init", "cache", "web", "worker"]);
    assert_eq!(
        error("[containers.db]\nimage = \"x\"\n[containers.web]\nimage = \"x\"\ndepends_on = { db = \"ready\" }\n"),
        "user-data:5:21: containers.web.depends_on.db: \"ready\" is not one of started, healthy, completed_successfully"
    );
    assert_eq!(
        error("[containers.web]\nimage = \"x\"\ndepends_on = { nope = \"started\" }\n"),
        "user-data:3:16: containers.web.depends_on.nope: \"nope\" is not a container in this file; containers are web"
    );
}
