//! Runs the external tools keel-build drives (sfdisk, mkfs.*, mtools, dpkg-deb, …) and, when one fails, names the
//! command and shows its stderr.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// Directories searched after `PATH`: an unprivileged user's `PATH` often lacks the sbin directories that hold
/// mkfs.*, sfdisk and depmod.
const SBIN_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("could not start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed { command: String, status: ExitStatus, stderr: String },
}

fn stderr_suffix(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(":\n{stderr}")
    }
}

/// One external command: program, arguments, environment, working directory and standard input.
pub struct Tool {
    program: String,
    args: Vec<OsString>,
    envs: Vec<(String, String)>,
    current_dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

impl Tool {
    pub fn new(program: &str) -> Self {
        Tool { program: program.to_owned(), args: Vec::new(), envs: Vec::new(), current_dir: None, stdin: None }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = A>, A: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.envs.push((key.to_owned(), value.to_string()));
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.current_dir = Some(dir.to_owned());
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// The command as a shell-like line, for messages.
    pub fn display(&self) -> String {
        let mut line = self.program.clone();
        for arg in &self.args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    }

    /// Runs the command to completion and returns its standard output.
    pub fn run(self) -> Result<Vec<u8>, CommandError> {
        let command = self.display();
        let spawn_error = |source| CommandError::Spawn { command: command.clone(), source };
        let mut process = Command::new(resolve(&self.program));
        process.args(&self.args).stdout(Stdio::piped()).stderr(Stdio::piped());
        process.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        for (key, value) in &self.envs {
            process.env(key, value);
        }
        if let Some(dir) = &self.current_dir {
            process.current_dir(dir);
        }
        let mut child = process.spawn().map_err(spawn_error)?;
        if let (Some(input), Some(mut pipe)) = (&self.stdin, child.stdin.take()) {
            // Inputs are small scripts (an sfdisk table), well below the pipe buffer, so no writer thread is needed.
            pipe.write_all(input).map_err(spawn_error)?;
        }
        let output = child.wait_with_output().map_err(spawn_error)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            return Err(CommandError::Failed { command, status: output.status, stderr });
        }
        Ok(output.stdout)
    }
}

/// Finds `program` in `PATH`, then in the sbin directories; a name found nowhere is returned as is, so spawning it
/// reports "not found" under its own name.
fn resolve(program: &str) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(program))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_the_command_and_its_stderr() {
        let error = Tool::new("sh").args(["-c", "echo broken >&2; exit 3"]).run().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`sh -c echo broken >&2; exit 3` failed"), "{message}");
        assert!(message.ends_with(":\nbroken"), "{message}");
    }

    #[test]
    fn passes_stdin_and_returns_stdout() {
        let output = Tool::new("cat").stdin("hello").run().unwrap();
        assert_eq!(output, b"hello");
    }

    #[test]
    fn finds_sbin_tools_without_path() {
        assert!(resolve("sfdisk").is_absolute());
    }
}
