//! Decides what a container runs, as `docker run` does: argv from entrypoint and cmd, env, workdir, user name.

use keel_config::ContainerConfig;

use super::image_config::ImageRunConfig;

/// Docker's PATH for images that set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to execute, before users are resolved against the image's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    /// `KEY=VALUE`, one per key.
    pub env: Vec<String>,
    pub workdir: String,
    /// `user[:group]` as written in the config or the image; empty for root.
    pub user: String,
}

/// The config and image leave nothing to run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("container {name}: no command: neither the config nor the image gives an entrypoint or cmd")]
pub struct NoCommandError {
    pub name: String,
}

/// Resolves argv, env, workdir and user for container `name`.
///
/// Docker's rules: a configured entrypoint replaces the image's Entrypoint *and* drops the image's Cmd; a
/// configured command replaces Cmd; argv is entrypoint followed by cmd. Env is the image's, then the config's
/// (same key: the config wins, in place), with Docker's PATH when neither sets one and HOSTNAME set.
pub fn resolve(
    name: &str,
    config: &ContainerConfig,
    image: &ImageRunConfig,
    hostname: &str,
) -> Result<ProcessSpec, NoCommandError> {
    let (entrypoint, cmd) = match &config.entrypoint {
        Some(entrypoint) => (entrypoint.argv(), config.command.as_ref().map(|command| command.argv())),
        None => (
            image.entrypoint.clone().unwrap_or_default(),
            config.command.as_ref().map(|command| command.argv()).or_else(|| image.cmd.clone()),
        ),
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd.unwrap_or_default()).collect();
    if argv.is_empty() {
        return Err(NoCommandError { name: name.to_owned() });
    }

    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |key: &str, value: &str| match env.iter_mut().find(|(existing, _)| existing == key) {
        Some(entry) => entry.1 = value.to_owned(),
        None => env.push((key.to_owned(), value.to_owned())),
    };
    set("HOSTNAME", hostname);
    for entry in image.env.iter().flatten() {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        set(key, value);
    }
    for (key, value) in &config.env {
        set(key, value);
    }
    if !env.iter().any(|(key, _)| key == "PATH") {
        env.insert(0, ("PATH".to_owned(), DEFAULT_PATH.to_owned()));
    }

    let workdir = config.workdir.clone().unwrap_or_else(|| image.working_dir.clone());
    let workdir = if workdir.is_empty() { "/".to_owned() } else { workdir };
    let user = match &config.user {
        Some(spec) => match &spec.group {
            Some(group) => format!("{}:{group}", spec.user),
            None => spec.user.clone(),
        },
        None => image.user.clone(),
    };
    Ok(ProcessSpec { argv, env: env.into_iter().map(|(key, value)| format!("{key}={value}")).collect(), workdir, user })
}

/// The value of `key` in a `KEY=VALUE` list.
/// Where to look for `program`, as execvp does: itself if it has a `/`, else each directory of `path` (the
/// environment's `PATH`, [`DEFAULT_PATH`] without one) joined with it.
pub fn executable_candidates(program: &str, path: Option<&str>) -> Vec<String> {
    if program.contains('/') {
        return vec![program.to_owned()];
    }
    path.unwrap_or(DEFAULT_PATH)
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| format!("{}/{program}", dir.trim_end_matches('/')))
        .collect()
}

pub fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter().find_map(|entry| entry.strip_prefix(key)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_config::containers::process::CommandLine;
    use keel_config::UserData;

    fn config(extra: &str) -> ContainerConfig {
        let text = format!("[containers.app]\nimage = \"busybox\"\n{extra}");
        UserData::parse("test", &text).unwrap().containers.remove("app").unwrap()
    }

    fn image() -> ImageRunConfig {
        ImageRunConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["serve".into(), "--port=1".into()]),
            env: Some(vec!["A=image".into(), "B=image".into()]),
            working_dir: "/srv".into(),
            user: "daemon".into(),
            ..ImageRunConfig::default()
        }
    }

    #[test]
    fn image_entrypoint_and_cmd_are_the_default() {
        let spec = resolve("app", &config(""), &image(), "app").unwrap();
        assert_eq!(spec.argv, ["/entry", "serve", "--port=1"]);
        assert_eq!(spec.workdir, "/srv");
        assert_eq!(spec.user, "daemon");
    }

    #[test]
    fn config_command_replaces_only_cmd() {
        let spec = resolve("app", &config("command = [\"x\"]"), &image(), "app").unwrap();
        assert_eq!(spec.argv, ["/entry", "x"]);
    }

    #[test]
    fn config_entrypoint_drops_the_image_cmd() {
        let spec = resolve("app", &config("entrypoint = [\"/other\"]"), &image(), "app").unwrap();
        assert_eq!(spec.argv, ["/other"]);
        let spec = resolve("app", &config("entrypoint = [\"/other\"]\ncommand = \"x y\""), &image(), "a").unwrap();
        assert_eq!(spec.argv, ["/other", "/bin/sh", "-c", "x y"]);
    }

    #[test]
    fn empty_entrypoint_clears_and_nothing_left_is_an_error() {
        let mut config = config("");
        config.entrypoint = Some(CommandLine::Exec(vec![]));
        let mut image = image();
        image.cmd = None;
        assert_eq!(resolve("app", &config, &image, "app").unwrap_err().name, "app");
    }

    #[test]
    fn env_merges_config_over_image_with_default_path_and_hostname() {
        let spec = resolve("app", &config("env = { B = \"config\", C = \"c\" }"), &image(), "host-1").unwrap();
        assert_eq!(
            spec.env,
            [
                format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=host-1".into(),
                "A=image".into(),
                "B=config".into(),
                "C=c".into()
            ]
        );
        let mut image = image();
        image.env = Some(vec!["PATH=/only".into()]);
        let spec = resolve("app", &config(""), &image, "h").unwrap();
        assert_eq!(env_value(&spec.env, "PATH"), Some("/only"));
    }

    #[test]
    fn workdir_and_user_from_config_win() {
        let spec = resolve("app", &config("workdir = \"/w\"\nuser = \"1000:50\""), &image(), "h").unwrap();
        assert_eq!(spec.workdir, "/w");
        assert_eq!(spec.user, "1000:50");
        let spec =
            resolve("app", &config(""), &ImageRunConfig { cmd: Some(vec!["sh".into()]), ..Default::default() }, "h")
                .unwrap();
        assert_eq!((spec.workdir.as_str(), spec.user.as_str()), ("/", ""));
    }
}
