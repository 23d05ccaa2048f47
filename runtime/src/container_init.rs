//! The container init: what `init = true` runs as PID 1 of a container, like `docker run --init` runs tini.
//!
//! It is its own small program (`keel-container-init`, beside the `keel` binary), executed by the container's
//! first process in place of the command, so that the container's PID 1 holds nothing of the supervisor's memory.
//! It runs the command as its only child, forwards every signal to the command's process group, reaps every
//! zombie, and exits with the command's status (128 + N for signal N).
//!
//! Its arguments are `-- COMMAND [ARG...]`; the command is found on the environment's `PATH` as the runtime finds
//! it. While a container starts, fd 3 is the runtime's error pipe: a failed exec of the command is reported there
//! exactly as without an init, and a successful one closes it.

use std::ffi::{CString, OsString};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::child::{self, Stage};
use crate::process_spec::executable_candidates;
use crate::sys::{self, NullTerminated};

/// The program's file name, installed beside the `keel` binary.
pub const PROGRAM_NAME: &str = "keel-container-init";

/// The runtime's error pipe while a container starts (see [`child`]).
const ERROR_FD: i32 = 3;

/// Exit status for bad arguments, before any command ran.
const EXIT_USAGE: i32 = 2;

/// Where the OS image installs it, beside PID 1's `/sbin/init`.
const IN_OS_IMAGE: &str = "/sbin/keel-container-init";

/// Where a supervisor finds the container init: beside its own executable (so in the OS image, beside
/// `/sbin/init`; in a build tree, beside `keel`).
pub fn beside_current_exe() -> PathBuf {
    let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join(PROGRAM_NAME)));
    beside.unwrap_or_else(|| PathBuf::from(IN_OS_IMAGE))
}

/// Whether the file at `path` is an ELF executable that needs no program interpreter: it runs in the
/// container's root, which has no loader of the host's (a glibc build of keel-container-init does not run there;
/// the musl build does). Reads at most the ELF and program headers.
pub fn is_static_executable(path: &Path) -> std::io::Result<bool> {
    const PT_INTERP: u32 = 3;
    let mut header = [0u8; 64];
    let mut file = std::fs::File::open(path)?;
    file.read_exact(&mut header)?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 {
        return Ok(false);
    }
    let u16_at = |bytes: &[u8], at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let program_headers = u64::from_le_bytes(header[32..40].try_into().unwrap_or_default());
    let (entry_size, count) = (usize::from(u16_at(&header, 54)), usize::from(u16_at(&header, 56)));
    if entry_size < 4 || count > 64 {
        return Ok(false);
    }
    let mut table = vec![0u8; entry_size * count];
    file.seek(SeekFrom::Start(program_headers))?;
    file.read_exact(&mut table)?;
    let has_interpreter = table
        .chunks_exact(entry_size)
        .any(|entry| u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]) == PT_INTERP);
    Ok(!has_interpreter)
}

/// The init's `argv`: the program name, `--`, then the command.
pub fn init_argv(command: &[CString]) -> Vec<CString> {
    let mut argv = vec![c"keel-container-init".to_owned(), c"--".to_owned()];
    argv.extend(command.iter().cloned());
    argv
}

/// The program: never returns.
pub fn main() -> ! {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some("--".as_ref()) {
        usage("expected `-- COMMAND [ARG...]`")
    }
    let command: Vec<OsString> = args.collect();
    let Some(program) = command.first().and_then(|program| program.to_str()) else {
        usage("no command (or a command name that is not UTF-8)")
    };
    let path = std::env::var_os("PATH").and_then(|path| path.into_string().ok());
    let candidates = to_cstrings(executable_candidates(program, path.as_deref()).into_iter().map(OsString::from));
    let argv = to_cstrings(command);
    let env = to_cstrings(std::env::vars_os().map(|(key, value)| {
        let mut entry = key;
        entry.push("=");
        entry.push(value);
        entry
    }));
    let argv = NullTerminated::new(argv.iter().map(CString::as_c_str));
    let envp = NullTerminated::new(env.iter().map(CString::as_c_str));
    // The command's exec closes the pipe: that, not this exec, is what the runtime waits for. Not open when run
    // by hand.
    let error_fd = if sys::set_cloexec(ERROR_FD, true).is_ok() { ERROR_FD } else { -1 };
    // Blocked before the fork, so that no signal sent in between is lost: they wait for sigwaitinfo.
    sys::set_signal_mask(true);
    let command_pid = match sys::clone_process(0) {
        Err(errno) => child::fail(error_fd, Stage::Fork, 0, errno),
        Ok(0) => child::exec_command(&candidates, &argv, &envp, error_fd),
        Ok(pid) => pid,
    };
    if error_fd >= 0 {
        sys::close(error_fd);
    }
    forward_and_reap(command_pid)
}

/// Forwards every signal to the command's group and reaps every child until the command ends; exits with its status.
fn forward_and_reap(command_pid: libc::pid_t) -> ! {
    loop {
        let signal = match sys::wait_any_signal() {
            Ok(signal) => signal,
            Err(_) => continue,
        };
        if signal != libc::SIGCHLD {
            // The command leads its own group (setsid); fall back to the command alone if the group is gone.
            if sys::kill(-command_pid, signal).is_err() {
                let _ = sys::kill(command_pid, signal);
            }
            continue;
        }
        while let Ok(Some((pid, status))) = sys::wait_nohang(-1) {
            if pid == command_pid {
                sys::exit_now(sys::status_code(status));
            }
        }
    }
}

/// Arguments and environment as C strings; one with a NUL byte cannot come from argv or environ.
fn to_cstrings(items: impl IntoIterator<Item = OsString>) -> Vec<CString> {
    items.into_iter().filter_map(|item| CString::new(item.into_vec()).ok()).collect()
}

fn usage(problem: &str) -> ! {
    eprintln!("{PROGRAM_NAME}: {problem}; it is the container init keel runs for `init = true`");
    std::process::exit(EXIT_USAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_static_executables_from_dynamic_ones_and_other_files() {
        // Debian's busybox-static is static, /bin/sh is not; a text file is no executable.
        assert!(is_static_executable(Path::new("/bin/busybox")).unwrap());
        assert!(!is_static_executable(Path::new("/bin/sh")).unwrap());
        let text = std::env::temp_dir().join(format!("not-elf-{}", std::process::id()));
        std::fs::write(&text, vec![b'#'; 100]).unwrap();
        assert!(!is_static_executable(&text).unwrap());
        std::fs::remove_file(text).unwrap();
    }
}
