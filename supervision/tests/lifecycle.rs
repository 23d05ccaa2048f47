//! Supervision around a container's life: stop timeouts, dependency order, health checks, reconciliation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use keel_fixtures::containers::{supervise, user_data, wait_status, TestHost};
use keel_supervision::health::HealthState;
use keel_supervision::machine::State;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

fn health_of(status: &keel_supervision::ContainerStatus) -> Option<HealthState> {
    status.health.as_ref().map(|health| health.status)
}

#[test]
fn stop_escalates_to_sigkill_after_the_stop_timeout() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(
        &host,
        "[containers.trap]\nimage = \"{image}\"\nstop_timeout = 2\nrestart = \"always\"\n\
         command = [\"sh\", \"-c\", \"trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.1; done\"]\n",
    );
    wait_status(&handle, "trap", "running", |status| status.state == State::Running);
    keel_fixtures::containers::wait_for("the trap to be set", Duration::from_secs(30), || {
        handle.logs("trap").unwrap().iter().any(|record| record.line == "ready").then_some(())
    });
    let started = Instant::now();
    handle.stop("trap", None).unwrap();
    let took = started.elapsed();
    let status = handle.container("trap").unwrap();
    assert_eq!((status.state, status.exit_code, status.restart_count), (State::Exited, 137, 0));
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(10), "stop took {took:?}");
    assert!(handle.logs("trap").unwrap().iter().any(|record| record.line == "got TERM"));
    handle.shutdown();
}

#[test]
fn depends_on_starts_in_order_and_waits_for_health() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(
        &host,
        "[containers.dweb]\nimage = \"{image}\"\ndepends_on = { dapi = \"healthy\" }\nstop_timeout = 1\ncommand = [\"sleep\", \"1000\"]\n\
         [containers.dapi]\nimage = \"{image}\"\ndepends_on = [\"ddb\"]\nstop_timeout = 1\ncommand = [\"sleep\", \"1000\"]\n\
         [containers.dapi.healthcheck]\ntest = [\"CMD\", \"true\"]\ninterval = \"300ms\"\n\
         [containers.ddb]\nimage = \"{image}\"\nstop_timeout = 1\ncommand = [\"sleep\", \"1000\"]\n",
    );
    let web = wait_status(&handle, "dweb", "running", |status| status.state == State::Running);
    let api = handle.container("dapi").unwrap();
    let db = handle.container("ddb").unwrap();
    let (db_start, api_start, web_start) = (db.started_at.unwrap(), api.started_at.unwrap(), web.started_at.unwrap());
    assert!(db_start <= api_start, "db before api");
    let waited = web_start.duration_since(api_start).unwrap();
    assert!(waited >= Duration::from_millis(300), "web waited for api's first healthy probe ({waited:?})");
    assert_eq!(health_of(&api), Some(HealthState::Healthy));
    let names: Vec<String> = handle.status().into_iter().map(|status| status.name).collect();
    assert_eq!(names, ["ddb", "dapi", "dweb"]);
    handle.shutdown();
}

#[test]
fn health_goes_starting_healthy_unhealthy() {
    let host = TestHost::new(Path::new(CACHE));
    let control = host.temp.path().join("control");
    std::fs::create_dir_all(&control).unwrap();
    let text = format!(
        "[containers.hc]\nimage = \"{{image}}\"\nstop_timeout = 1\nrequired = true\ncommand = [\"sleep\", \"1000\"]\n\
         volumes = [\"{}:/ctl:ro\"]\n\
         [containers.hc.healthcheck]\ntest = \"test -f /ctl/healthy\"\ninterval = \"200ms\"\ntimeout = \"5s\"\nretries = 2\n",
        control.display()
    );
    let handle = supervise(&host, &text);
    let running = wait_status(&handle, "hc", "running", |status| status.state == State::Running);
    assert_eq!(health_of(&running), Some(HealthState::Starting));
    assert!(running.required);
    // Failures before the first success count (no start period): two make it unhealthy.
    let unhealthy = wait_status(&handle, "hc", "unhealthy", |status| health_of(status) == Some(HealthState::Unhealthy));
    assert!(unhealthy.health.unwrap().failing_streak >= 2);
    std::fs::write(control.join("healthy"), "").unwrap();
    let healthy = wait_status(&handle, "hc", "healthy", |status| health_of(status) == Some(HealthState::Healthy));
    let health = healthy.health.unwrap();
    assert_eq!(health.failing_streak, 0);
    assert!(health.log.len() <= 5 && health.log.back().unwrap().exit_code == 0);
    std::fs::remove_file(control.join("healthy")).unwrap();
    let again =
        wait_status(&handle, "hc", "unhealthy again", |status| health_of(status) == Some(HealthState::Unhealthy));
    assert_eq!(again.state, State::Running, "unhealthy containers keep running, as with Docker");
    handle.shutdown();
}

#[test]
fn reconcile_starts_new_stops_removed_recreates_changed_and_keeps_the_rest() {
    let host = TestHost::new(Path::new(CACHE));
    let container = |name: &str, extra: &str| {
        format!(
            "[containers.{name}]\nimage = \"{{image}}\"\nstop_timeout = 1\ncommand = [\"sleep\", \"1000\"]\n{extra}\n"
        )
    };
    let before = [container("rkeep", ""), container("rchange", "env = { V = \"1\" }"), container("rgone", "")].concat();
    let handle = supervise(&host, &before);
    let mut pids = std::collections::BTreeMap::new();
    for name in ["rkeep", "rchange", "rgone"] {
        pids.insert(name, wait_status(&handle, name, "running", |status| status.state == State::Running).pid.unwrap());
    }
    let after = [container("rkeep", ""), container("rchange", "env = { V = \"2\" }"), container("rnew", "")].concat();
    let plan = handle.apply(&user_data(&after)).unwrap();
    assert_eq!(
        (plan.keep, plan.recreate, plan.remove, plan.create),
        (vec!["rkeep".into()], vec!["rchange".into()], vec!["rgone".into()], vec!["rnew".into()])
    );
    assert!(handle.container("rgone").is_none());
    assert!(!host.state_dir.join("containers/rgone").exists(), "a removed container's files are deleted");
    let changed = wait_status(&handle, "rchange", "running again", |status| status.state == State::Running);
    assert_ne!(changed.pid.unwrap(), pids["rchange"]);
    wait_status(&handle, "rnew", "running", |status| status.state == State::Running);
    assert_eq!(handle.container("rkeep").unwrap().pid.unwrap(), pids["rkeep"], "unchanged keeps running");
    handle.shutdown();
}

#[test]
fn apply_stops_the_containers_it_removes_at_once() {
    let host = TestHost::new(Path::new(CACHE));
    let mut text = String::new();
    for index in 0..10 {
        text.push_str(&format!(
            "[containers.deaf{index}]\nimage = \"{{image}}\"\nstop_timeout = 2\ncommand = [\"sleep\", \"100000\"]\n"
        ));
    }
    text.push_str("[containers.stays]\nimage = \"{image}\"\ncommand = [\"sleep\", \"100000\"]\n");
    let handle = supervise(&host, &text);
    for index in 0..10 {
        wait_status(&handle, &format!("deaf{index}"), "running", |status| status.state == State::Running);
    }
    let started = Instant::now();
    let plan = handle
        .apply(&user_data("[containers.stays]\nimage = \"{image}\"\ncommand = [\"sleep\", \"100000\"]\n"))
        .unwrap();
    let took = started.elapsed();
    assert_eq!(plan.remove.len(), 10);
    // One after the other this was 10 × 2 s.
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(10), "apply took {took:?}");
    assert_eq!(handle.status().len(), 1);
    handle.shutdown();
}

/// A container's files are kept across supervisor restarts while its definition stays the same, even written in
/// another key order and spelling (the fingerprint is of the user's table in canonical form), and recreated when it
/// changes.
#[test]
fn the_writable_layer_survives_a_reordered_config_and_not_a_changed_one() {
    let host = TestHost::new(Path::new(CACHE));
    let script = "test -f /kept && echo found || echo absent; touch /kept; echo done";
    // The log files go with the writable layer: `runs` is how many runs' output the logs hold by the end of this
    // one; the answer is what this run found.
    let run = |text: &str, runs: usize| {
        let handle = supervise(&host, text);
        wait_status(&handle, "wl", "exited", |status| {
            status.state == State::Exited && status.finished_at.is_some() && status.restart_count == 0
        });
        let lines = keel_fixtures::containers::wait_for("its output", Duration::from_secs(30), || {
            let lines: Vec<String> = handle.logs("wl").unwrap().into_iter().map(|record| record.line).collect();
            (lines.iter().filter(|line| *line == "done").count() == runs).then_some(lines)
        });
        handle.shutdown();
        assert_eq!(lines.len(), 2 * runs, "{lines:?}");
        lines[lines.len() - 2].clone()
    };
    let first = format!(
        "[containers.wl]\nimage = \"{{image}}\"\nrestart = \"no\"\nstop_timeout = 1\nenv = {{ A = \"1\", B = \"2\" }}\n\
         command = [\"sh\", \"-c\", \"{script}\"]\n"
    );
    assert_eq!(run(&first, 1), "absent", "a new container starts with the image's files");
    let reordered = format!(
        "[containers.wl]\nenv = {{ B = \"2\", A = \"1\" }}\ncommand = ['sh', '-c', '{script}']\nstop_timeout = 0x1\n\
         image = '{{image}}'\nrestart = \"no\"\n"
    );
    assert_eq!(run(&reordered, 2), "found", "the same definition, reordered, keeps the writable layer");
    let changed = first.replace("stop_timeout = 1", "stop_timeout = 2");
    assert_eq!(run(&changed, 1), "absent", "a changed definition gets a new writable layer");
}
