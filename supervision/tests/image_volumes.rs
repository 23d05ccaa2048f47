//! Image `VOLUME`s as `docker run` treats them: an anonymous volume each, filled from the image, that outlives the
//! container's writable layer when its definition or its image changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use keel_fixtures::containers::{busybox_archive, supervise, wait_for, wait_status, TestHost};
use keel_fixtures::devices::image_with_layer;
use keel_fixtures::images::{raw_tar, RawEntry};
use keel_runtime::image_volumes::anonymous_volume_name;
use keel_supervision::machine::State;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const IMAGE: &str = "keel-test/db:1";

/// Imports (again) `IMAGE`: busybox plus `/var/lib/db/seed` holding `seed`, declared a `VOLUME` (with a trailing
/// slash, as Dockerfiles often write it).
fn import_db_image(host: &TestHost, seed: &str) {
    let layer = raw_tar(&[RawEntry::Dir("var/lib/db/"), RawEntry::File("var/lib/db/seed", seed.as_bytes())]);
    let archive = image_with_layer(&busybox_archive(Path::new(CACHE)), host.temp.path(), IMAGE, &layer, |config| {
        config["config"]["Volumes"] = serde_json::json!({ "/var/lib/db/": {} });
    });
    host.store.import_archive(&archive).unwrap();
}

/// Runs the config under a new supervisor (a boot) until `db` has printed its last line; returns its lines.
fn boot_and_run(host: &TestHost, text: &str) -> Vec<String> {
    let handle = supervise(host, text);
    wait_status(&handle, "db", "exited", |status| status.state == State::Exited && status.finished_at.is_some());
    let lines = wait_for("its output", Duration::from_secs(30), || {
        let lines: Vec<String> = handle.logs("db").unwrap().into_iter().map(|record| record.line).collect();
        lines.contains(&"done".to_owned()).then_some(lines)
    });
    handle.shutdown();
    lines
}

#[test]
fn image_volumes_get_an_anonymous_volume_kept_across_config_and_image_changes() {
    let host = TestHost::new(Path::new(CACHE));
    import_db_image(&host, "from image 1\n");
    // The volume holds the runs; the writable layer's /layer-marker shows when the container was recreated.
    let script = "cat /var/lib/db/seed; echo run >> /var/lib/db/runs; wc -l < /var/lib/db/runs; \
                  test -f /layer-marker && echo same-layer || echo new-layer; touch /layer-marker; \
                  grep -c ' /var/lib/db ' /proc/mounts; echo done";
    let config = |env: &str| {
        format!(
            "[containers.db]\nimage = \"{IMAGE}\"\nrestart = \"no\"\nenv = {{ A = \"{env}\" }}\n\
             command = [\"sh\", \"-c\", \"{script}\"]\n"
        )
    };
    assert_eq!(boot_and_run(&host, &config("1")), ["from image 1", "1", "new-layer", "1", "done"]);
    let volume = host.state_dir.join("volumes").join(anonymous_volume_name("db", "/var/lib/db"));
    assert!(volume.file_name().unwrap().to_str().unwrap().starts_with("db-"), "{}", volume.display());
    assert_eq!(std::fs::read_to_string(volume.join("seed")).unwrap(), "from image 1\n", "populated from the image");
    assert_eq!(std::fs::read_to_string(volume.join("runs")).unwrap(), "run\n");

    // A changed definition: a new writable layer, the same volume.
    assert_eq!(boot_and_run(&host, &config("2")), ["from image 1", "2", "new-layer", "1", "done"]);
    // A new image under the same tag: the same, and the volume is not refilled (Docker fills only empty volumes).
    import_db_image(&host, "from image 2\n");
    assert_eq!(boot_and_run(&host, &config("2")), ["from image 1", "3", "new-layer", "1", "done"]);
    // Nothing changed: the same layer too, and the same log files, which keep the run before (Docker's json-file).
    assert_eq!(
        boot_and_run(&host, &config("2")),
        ["from image 1", "3", "new-layer", "1", "done", "from image 1", "4", "same-layer", "1", "done"]
    );
}

#[test]
fn an_image_volume_the_config_mounts_something_on_gets_no_anonymous_volume() {
    let host = TestHost::new(Path::new(CACHE));
    import_db_image(&host, "seeded\n");
    let text = format!(
        "[containers.db]\nimage = \"{IMAGE}\"\nvolumes = [\"dbdata:/var/lib/db\"]\n\
         command = [\"sh\", \"-c\", \"cat /var/lib/db/seed; echo done\"]\n"
    );
    assert_eq!(boot_and_run(&host, &text), ["seeded", "done"]);
    let volumes: Vec<String> = std::fs::read_dir(host.state_dir.join("volumes"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(volumes, ["dbdata"], "the named volume only");
}
