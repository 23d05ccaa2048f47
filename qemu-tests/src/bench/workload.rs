//! What both sides of `make bench` run: the demo config's `hello` container, and loggers for the memory boot.

use std::fmt::Write as _;

use anyhow::{bail, ensure, Context, Result};
use keel_config::containers::process::CommandLine;
use keel_config::containers::restart::RestartPolicy;
use keel_config::UserData;

use crate::artifacts::workspace_dir;

/// The bench's boot workload (once `make run`'s demo, which has since grown a web server), relative to the workspace.
pub const DEMO_USER_DATA: &str = "qemu-tests/bench/user-data.toml";
/// The demo container both sides start at boot.
pub const HELLO: &str = "hello";
/// Containers that log, started beside `hello` for the memory figure.
pub const LOGGERS: usize = 20;
/// A logger's command: a line a second, one fork (`sleep`) a second.
pub const LOGGER_CMD: &str = r#"i=0; while true; do i=$((i + 1)); echo "line $i"; sleep 1; done"#;
/// keel's container that reads the host's /proc for the memory figure.
pub const METER: &str = "meter";
/// The image both sides run (keel preloads it; the peer `docker load`s the same archive).
pub const IMAGE: &str = "keel/busybox";

/// The demo's user-data and the `sh -c` script of its `hello` container.
pub struct Workload {
    pub demo_user_data: String,
    pub hello_script: String,
}

impl Workload {
    /// Reads the demo config and checks that `hello` is what the peer recipe reproduces with
    /// `docker run --restart always --memory 32m --init keel/busybox sh -c …`.
    pub fn load() -> Result<Self> {
        let path = workspace_dir().join(DEMO_USER_DATA);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let user_data = UserData::parse(DEMO_USER_DATA, &text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let hello = user_data.containers.get(HELLO).with_context(|| format!("no container {HELLO} in the demo"))?;
        let mismatch = "the peer recipe (scripts/peer/prepare.sh) no longer matches the demo's hello";
        ensure!(hello.image == IMAGE, "{mismatch}: image {}", hello.image);
        ensure!(hello.restart == RestartPolicy::Always, "{mismatch}: restart {:?}", hello.restart);
        ensure!(hello.resources.memory == Some(32 << 20), "{mismatch}: memory {:?}", hello.resources.memory);
        ensure!(hello.init, "{mismatch}: init is off");
        let hello_script = match &hello.command {
            Some(CommandLine::Exec(argv)) if argv.len() == 3 && argv[0] == "sh" && argv[1] == "-c" => argv[2].clone(),
            Some(CommandLine::Shell(script)) => script.clone(),
            other => bail!("{mismatch}: command {other:?} is not `sh -c SCRIPT`"),
        };
        Ok(Self { demo_user_data: text, hello_script })
    }

    /// `/peer/containers.sh` for the peer image: the same commands, as shell variables.
    pub fn peer_containers_sh(&self) -> String {
        format!(
            "# Written by keel-bench: the commands of keel's demo container and of the loggers.\n\
             HELLO_CMD={}\nLOGGER_CMD={}\nLOGGERS={LOGGERS}\n",
            shell_quote(&self.hello_script),
            shell_quote(LOGGER_CMD)
        )
    }

    /// keel's user-data for the memory boot: the demo (with `hello`), the loggers, and `meter` printing
    /// `pss <pid> <ppid> <kB> <cgroup> <comm>` for PID 1 and its children every 30 s between `pss-begin`/`pss-end`.
    pub fn keel_memory_user_data(&self) -> String {
        let mut text = self.demo_user_data.clone();
        for n in 1..=LOGGERS {
            // Writing to a String cannot fail.
            let _ = write!(
                text,
                "\n[containers.log{n}]\nimage = \"{IMAGE}\"\ncommand = [\"sh\", \"-c\", '{LOGGER_CMD}']\n\
                 memory = \"32m\"\ninit = true\n"
            );
        }
        let _ = write!(
            text,
            "\n[containers.{METER}]\nimage = \"{IMAGE}\"\ncommand = [\"sh\", \"-c\", '''{METER_SCRIPT}''']\n\
             volumes = [\"/proc:/hostproc:ro\"]\ncap_add = [\"SYS_PTRACE\"]\ninit = true\n"
        );
        text
    }
}

/// The meter's script (busybox sh, builtins only in the loop so that it barely disturbs what it measures).
/// smaps_rollup needs ptrace read access to PID 1: hence SYS_PTRACE.
const METER_SCRIPT: &str = "while true; do sleep 30; echo pss-begin; \
for d in /hostproc/[0-9]*; do p=${d#/hostproc/}; pp=; \
while read -r k v _; do [ \"$k\" = PPid: ] && pp=$v; done 2>/dev/null < $d/status; \
[ \"$p\" = 1 ] || [ \"$pp\" = 1 ] || continue; \
pss=; while read -r k v _; do [ \"$k\" = Pss: ] && pss=$v; done < $d/smaps_rollup; \
read -r cg < $d/cgroup; read -r comm < $d/comm; echo \"pss $p $pp $pss $cg $comm\"; done; \
echo pss-end; done";

/// `'…'` with every `'` written as `'\''`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_what_the_peer_runs_and_keel_memory_config_is_valid() {
        let workload = Workload::load().unwrap();
        assert!(workload.hello_script.starts_with("echo hello"));
        let sh = workload.peer_containers_sh();
        assert!(sh.contains("LOGGERS=20\n") && sh.contains("HELLO_CMD='echo hello"));
        let memory = UserData::parse("memory", &workload.keel_memory_user_data()).unwrap();
        assert_eq!(memory.containers.len(), LOGGERS + 2);
        assert!(memory.containers["meter"].init);
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
