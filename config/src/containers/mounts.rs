//! Parses what a container mounts: `volumes` (`SRC:DST[:ro|rw]`), `tmpfs` (`/path[:options]`) and `devices`.

/// One entry of `volumes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub source: VolumeSource,
    /// Absolute path in the container.
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A host path, bind-mounted.
    Bind(String),
    /// A named volume under `/var/lib/keel/volumes/<name>`, created on first use.
    Named(String),
}

/// One entry of `tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    pub target: String,
    /// Mount options as given, e.g. `size=64m,mode=1777`; empty for none.
    pub options: String,
}

/// One entry of `devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub host: String,
    pub container: String,
    /// A non-empty subset of `rwm`; `rwm` when not given.
    pub permissions: String,
}

const TMPFS_OPTIONS: [&str; 13] =
    ["size", "mode", "uid", "gid", "nr_inodes", "ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev"];

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, Docker's rule for container and volume names.
pub fn is_docker_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|byte| byte.is_ascii_alphanumeric())
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"_.-".contains(&byte))
}

fn is_absolute(path: &str) -> bool {
    path.starts_with('/') && !path.contains('\0')
}

pub(crate) fn parse_volume(text: &str) -> Result<Volume, String> {
    let error = |why: &str| format!("{text:?} is not SRC:DST[:ro|rw]: {why}");
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [source, target] => (*source, *target, None),
        [source, target, mode] => (*source, *target, Some(*mode)),
        _ => return Err(error("expected two or three ':'-separated parts")),
    };
    let source = if is_absolute(source) {
        VolumeSource::Bind(source.to_owned())
    } else if is_docker_name(source) {
        VolumeSource::Named(source.to_owned())
    } else {
        return Err(error("SRC is an absolute host path or a volume name [a-zA-Z0-9][a-zA-Z0-9_.-]*"));
    };
    if !is_absolute(target) {
        return Err(error("DST is an absolute path"));
    }
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(_) => return Err(error("the mode is ro or rw")),
    };
    Ok(Volume { source, target: target.to_owned(), read_only })
}

pub(crate) fn parse_tmpfs(text: &str) -> Result<Tmpfs, String> {
    let (target, options) = text.split_once(':').unwrap_or((text, ""));
    if !is_absolute(target) {
        return Err(format!("{text:?} is not /path[:options]: the path is absolute"));
    }
    for option in options.split(',').filter(|option| !option.is_empty()) {
        let name = option.split_once('=').map_or(option, |(name, _)| name);
        if !TMPFS_OPTIONS.contains(&name) {
            return Err(format!(
                "{text:?} has an unknown tmpfs option {name:?}; expected {}",
                TMPFS_OPTIONS.join(", ")
            ));
        }
    }
    Ok(Tmpfs { target: target.to_owned(), options: options.to_owned() })
}

pub(crate) fn parse_device(text: &str) -> Result<Device, String> {
    let error = || format!("{text:?} is not a device like /dev/x[:/dev/y][:rwm]");
    let parts: Vec<&str> = text.split(':').collect();
    let (host, container, permissions) = match parts.as_slice() {
        [host] => (*host, *host, "rwm"),
        [host, other] if other.starts_with('/') => (*host, *other, "rwm"),
        [host, permissions] => (*host, *host, *permissions),
        [host, container, permissions] => (*host, *container, *permissions),
        _ => return Err(error()),
    };
    let mut seen = String::new();
    for flag in permissions.chars() {
        if !"rwm".contains(flag) || seen.contains(flag) {
            return Err(error());
        }
        seen.push(flag);
    }
    if !host.starts_with("/dev/") || !is_absolute(container) || permissions.is_empty() {
        return Err(error());
    }
    Ok(Device { host: host.to_owned(), container: container.to_owned(), permissions: permissions.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_volumes() {
        let volume = parse_volume("data:/var/lib/db:ro").unwrap();
        assert_eq!(volume.source, VolumeSource::Named("data".into()));
        assert!(volume.read_only);
        assert_eq!(parse_volume("/srv:/srv").unwrap().source, VolumeSource::Bind("/srv".into()));
        assert_eq!(
            parse_volume("data:rel").unwrap_err(),
            "\"data:rel\" is not SRC:DST[:ro|rw]: DST is an absolute path"
        );
        for bad in ["/a", "_x:/a", "/a:/b:z", "a:/b:ro:x"] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_tmpfs_and_devices() {
        assert_eq!(parse_tmpfs("/run:size=64m,mode=1777").unwrap().options, "size=64m,mode=1777");
        assert!(parse_tmpfs("/run:bogus").is_err());
        assert_eq!(parse_device("/dev/fuse").unwrap().permissions, "rwm");
        assert_eq!(parse_device("/dev/ttyS0:/dev/tty0:rw").unwrap().container, "/dev/tty0");
        assert_eq!(parse_device("/dev/kvm:r").unwrap().container, "/dev/kvm");
        for bad in ["/dev/x:rwx", "/dev/x:rr", "/tmp/x", "/dev/x:/dev/y:rw:m"] {
            assert!(parse_device(bad).is_err(), "{bad}");
        }
    }
}
