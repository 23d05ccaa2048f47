//! Reads what a container runs and as whom: `entrypoint`, `command`, `env` and `user`.

use crate::reader::{Field, Reader};
use toml::de::DeValue;

/// An entrypoint or command: Docker's exec form (an array) or shell form (a string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// Run as given; an empty array clears the image's value.
    Exec(Vec<String>),
    /// Run as `/bin/sh -c <string>`.
    Shell(String),
}

impl CommandLine {
    /// The argument vector to execute.
    pub fn argv(&self) -> Vec<String> {
        match self {
            CommandLine::Exec(argv) => argv.clone(),
            CommandLine::Shell(line) => vec!["/bin/sh".to_owned(), "-c".to_owned(), line.clone()],
        }
    }
}

/// `user = "name|uid[:group|gid]"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub user: String,
    pub group: Option<String>,
}

pub(crate) fn command_line(reader: &mut Reader, field: &Field) -> Option<CommandLine> {
    match field.node.get_ref() {
        DeValue::String(line) => Some(CommandLine::Shell(line.to_string())),
        DeValue::Array(_) => Some(CommandLine::Exec(reader.string_array(field))),
        _ => {
            reader.wrong_type(field, "an array of strings (exec form) or a string (run by /bin/sh -c)");
            None
        }
    }
}

/// `env = { KEY = "value" }` or `env = ["KEY=value"]`, in file order.
pub(crate) fn env(reader: &mut Reader, field: &Field) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if field.node.get_ref().is_table() {
        let Some(table) = reader.map(field) else { return env };
        for (key, key_span, value) in table.entries() {
            if let Err(message) = check_env_name(key) {
                reader.error(key_span, &value.path, message);
            } else if let Some(text) = reader.string(&value) {
                env.push((key.to_owned(), text.to_owned()));
            }
        }
    } else if field.node.get_ref().is_array() {
        let pairs = reader.parse_array(field, |text| {
            let (key, value) = text.split_once('=').ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
            check_env_name(key)?;
            Ok::<_, String>((key.to_owned(), value.to_owned()))
        });
        env.extend(pairs);
    } else {
        reader.wrong_type(field, "a table of strings or an array of \"KEY=VALUE\"");
    }
    env
}

fn check_env_name(key: &str) -> Result<(), String> {
    if key.is_empty() || key.contains(['=', '\0']) {
        Err(format!("{key:?} is not an environment variable name (non-empty, no '=')"))
    } else {
        Ok(())
    }
}

pub(crate) fn parse_user(text: &str) -> Result<UserSpec, String> {
    let error = || format!("{text:?} is not a user like \"nobody\", \"1000\" or \"1000:1000\" (name|uid[:group|gid])");
    let valid = |part: &str| {
        !part.is_empty()
            && part.len() <= 32
            && !part.starts_with('-')
            && part.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"_.-".contains(&byte))
    };
    let (user, group) = match text.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (text, None),
    };
    if !valid(user) || group.is_some_and(|group| !valid(group)) {
        return Err(error());
    }
    Ok(UserSpec { user: user.to_owned(), group: group.map(str::to_owned) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_users() {
        assert_eq!(parse_user("1000:50"), Ok(UserSpec { user: "1000".into(), group: Some("50".into()) }));
        assert_eq!(parse_user("nobody").unwrap().group, None);
        for bad in ["", ":1", "a:", "a b", "a:b:c"] {
            assert!(parse_user(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shell_form_runs_under_sh() {
        assert_eq!(CommandLine::Shell("echo hi".into()).argv(), ["/bin/sh", "-c", "echo hi"]);
    }
}
