//! The README's quick start, followed as written: its commands are read from README.md's `## Quick start` blocks
//! (so that the test fails when the README drifts), `make run` boots the demo, and each command of the second
//! block, run by `sh` as a user would type it, gives the output the README promises: `docker ps` lists the web
//! server, `curl` gets its page, `keelctl ps` lists it too. Then the ACPI button powers the demo off cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use keel_qemu_tests::artifacts::{self, workspace_dir};
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::Vm;

/// `make run` builds before it boots (cargo finds nothing to do after `ensure_built`, keel-build writes the image
/// again): time for that on a loaded machine, on top of the boot's own timeout.
const MAKE_RUN_BUILD: Duration = Duration::from_secs(900);

/// The fenced `sh` blocks of the README's `## Quick start` section (up to the next heading), each a list of
/// commands without their comments.
fn quick_start_blocks(readme: &str) -> Result<Vec<Vec<String>>> {
    let start = readme.find("\n## Quick start\n").context("README.md has no `## Quick start` section")?;
    let section = &readme[start + 1..];
    let section = section.lines().skip(1).take_while(|line| !line.starts_with("## ") && !line.starts_with("### "));
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in section {
        match (&mut current, line.trim()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), text) => {
                let command = text.split(" #").next().unwrap_or_default().trim();
                if !command.is_empty() && !command.starts_with('#') {
                    block.push(command.to_owned());
                }
            }
            (None, _) => {}
        }
    }
    Ok(blocks)
}

/// What the README says each command shows, as a check of its output; a command the test does not know fails.
fn check(command: &str, output: &str) -> Result<bool> {
    let listed = |name: &str| output.lines().skip(1).any(|line| line.split_whitespace().last() == Some(name));
    Ok(match command {
        "docker -H tcp://127.0.0.1:2375 ps" => {
            output.starts_with("CONTAINER ID") && listed("web") && listed("hello") && output.contains("keel/busybox")
        }
        "curl http://127.0.0.1:8080/" => output.contains("<h1>Hello from keel</h1>"),
        "target/release/keelctl --host tcp://127.0.0.1:2375 ps" => {
            output.starts_with("CONTAINER ID") && listed("web") && listed("hello")
        }
        other => bail!("the README's quick start has a command this test does not know how to check: {other}"),
    })
}

/// Kills `make run`'s process group (make, the script, QEMU) when the test ends, also when it fails: the VM's own
/// drop only reaches its direct child, `sh`.
struct ProcessGroup(i32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.0), nix::sys::signal::Signal::SIGKILL);
    }
}

#[test]
fn the_readme_quick_start_works_as_written() -> Result<()> {
    let workspace = workspace_dir();
    let readme = std::fs::read_to_string(workspace.join("README.md"))?;
    let blocks = quick_start_blocks(&readme)?;
    ensure!(blocks.len() == 2, "the quick start has two command blocks (boot, then try it): {blocks:?}");
    ensure!(blocks[0] == ["make run"], "the quick start boots with `make run` alone: {:?}", blocks[0]);
    ensure!(!blocks[1].is_empty(), "the quick start shows what to run once the demo is up");

    let artifacts = artifacts::ensure_built()?;
    let scratch = tempfile::tempdir()?;
    let mut command = Command::new("sh");
    command.arg("-c").arg(&blocks[0][0]).current_dir(&workspace);
    // The test's build directory (make's `BUILD ?= build`), and a process group of its own for the cleanup.
    command.env("BUILD", &artifacts.build_dir).process_group(0);
    let vm = Vm::start_script("readme_quickstart", command, Some(&artifacts.log_dir()))?;
    let _group = ProcessGroup(i32::try_from(vm.pid())?);
    let ready = vm.wait_for_ready(MAKE_RUN_BUILD + timeouts::OVMF_READY)?;
    ensure!(ready.contains("host keel-demo"), "the demo user-data was not applied: {ready}");
    let ready_at = Instant::now();

    let docker_config = scratch.path().join("docker-config");
    std::fs::create_dir_all(&docker_config)?;
    for line in &blocks[1] {
        let deadline = Instant::now() + timeouts::CONTAINER;
        loop {
            let output = Command::new("sh")
                .arg("-c")
                .arg(line)
                .current_dir(&workspace)
                .env("DOCKER_CONFIG", &docker_config)
                .env_remove("DOCKER_HOST")
                .env_remove("KEEL_HOST")
                .output()?;
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            if output.status.success() && check(line, &stdout)? {
                eprintln!("{line}: as the README says, {:.1}s after keel: ready", ready_at.elapsed().as_secs_f64());
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "`{line}` never showed what the README says: {}\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    // The page was served by busybox httpd in the container: its request log is the container's output.
    vm.wait_for_anywhere("web | ", timeouts::CONTAINER)?;

    vm.power_down()?;
    vm.wait_for("keel: powering off", timeouts::SHUTDOWN)?;
    let status = vm.wait_for_exit(timeouts::SHUTDOWN)?;
    ensure!(status.success(), "make run did not exit cleanly after the guest powered off: {status}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_commands_of_the_quick_start_only() {
        let readme = "# x\n\n## Quick start\n\ntext\n\n```sh\nmake run    # boot\n```\n\nmore\n\n```sh\n\
                      # a comment\ncurl http://x/   # fetch\n```\n\n### Tests\n\n```sh\nmake test\n```\n";
        assert_eq!(
            quick_start_blocks(readme).unwrap(),
            [vec!["make run".to_owned()], vec!["curl http://x/".to_owned()]]
        );
    }
}
