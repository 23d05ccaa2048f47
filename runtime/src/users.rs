//! Resolves `user[:group]` to uid, gid and supplementary groups from the image's `/etc/passwd` and `/etc/group`.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use keel_config::bounded_file::{read_bounded, BoundedReadError, MAX_OUTSIDE_FILE};

use super::sys;

/// Who the container runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the gid, and every group in `/etc/group` that lists the user by name unless the spec
    /// names a group.
    pub groups: Vec<u32>,
    /// The passwd home directory, `/` when unknown (for `HOME`).
    pub home: String,
}

/// A name that the image's files do not know.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("container {container}: unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { container: String, user: String },
    #[error("container {container}: unable to find group {group}: no matching entries in group file")]
    UnknownGroup { container: String, group: String },
    #[error("container {container}: an account file of its image or writable layer is too large")]
    FileTooLarge {
        container: String,
        #[source]
        source: BoundedReadError,
    },
}

/// The most of `/etc/passwd` or `/etc/group` PID 1 reads from an image (tens of thousands of accounts).
pub const MAX_ACCOUNT_FILE: u64 = MAX_OUTSIDE_FILE;

/// Reads `relative` (e.g. `etc/passwd`) as the container sees it: from the highest of `layers` (highest first)
/// that has it, resolved inside that layer (an image's symlinks never lead to the host's files) and only as a
/// regular file. An overlay whiteout (a 0/0 character device) there means deleted.
pub fn read_merged(
    container: &str,
    layers_highest_first: &[PathBuf],
    relative: &str,
) -> Result<Option<String>, UserError> {
    let Ok(relative_c) = CString::new(relative) else { return Ok(None) };
    for layer in layers_highest_first {
        let Ok(root) = File::open(layer) else { continue };
        let open = |flags| {
            sys::openat2(root.as_raw_fd(), &relative_c, flags | libc::O_NOFOLLOW, 0, sys::RESOLVE_IMAGE_PATH)
                // SAFETY: openat2 returned a new descriptor that nothing else owns.
                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        };
        // The entry itself (O_PATH with O_NOFOLLOW opens a symlink or a device without following or opening it).
        let Ok(entry) = open(libc::O_PATH) else { continue };
        match sys::fstat(entry.as_raw_fd()).map(|(_, _, mode)| mode & libc::S_IFMT) {
            Ok(libc::S_IFCHR) => return Ok(None),
            Ok(libc::S_IFREG) => {}
            _ => continue,
        }
        let Ok(file) = open(libc::O_RDONLY | libc::O_NONBLOCK) else { return Ok(None) };
        let shown = format!("/{relative}");
        let bytes = match read_bounded(File::from(file), Path::new(&shown), MAX_ACCOUNT_FILE) {
            Ok(bytes) => bytes,
            Err(error @ BoundedReadError::TooLarge { .. }) => {
                return Err(UserError::FileTooLarge { container: container.to_owned(), source: error })
            }
            Err(_) => return Ok(None),
        };
        return Ok(String::from_utf8(bytes).ok());
    }
    Ok(None)
}

/// Resolves `spec` (`name|uid[:group|gid]`, empty for root) against passwd and group file contents.
pub fn resolve_user(container: &str, spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser, UserError> {
    let (user, group_spec) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entry = passwd.lines().filter_map(PasswdEntry::parse).find(|entry| match user.parse::<u32>() {
        Ok(uid) => entry.uid == uid,
        Err(_) => entry.name == user,
    });
    let (uid, mut gid, name, home) = match (&entry, user.parse::<u32>()) {
        (Some(entry), _) => (entry.uid, entry.gid, Some(entry.name), entry.home.to_owned()),
        // A numeric uid needs no passwd entry; its group is then the root group, as with runc.
        (None, Ok(uid)) => (uid, 0, None, "/".to_owned()),
        (None, Err(_)) => {
            return Err(UserError::UnknownUser { container: container.to_owned(), user: user.to_owned() })
        }
    };
    let groups: Vec<GroupEntry> = group.lines().filter_map(GroupEntry::parse).collect();
    if let Some(wanted) = group_spec {
        gid =
            match wanted.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => groups.iter().find(|entry| entry.name == wanted).map(|entry| entry.gid).ok_or_else(|| {
                    UserError::UnknownGroup { container: container.to_owned(), group: wanted.to_owned() }
                })?,
            };
    }
    // Supplementary groups come from /etc/group only in the implicit form `user`: `user:group` names the one group
    // the process gets, as with runc.
    let mut supplementary: Vec<u32> = match (name, group_spec) {
        (Some(name), None) => {
            groups.iter().filter(|entry| entry.members.contains(&name)).map(|entry| entry.gid).collect()
        }
        _ => Vec::new(),
    };
    if !supplementary.contains(&gid) {
        supplementary.insert(0, gid);
    }
    supplementary.dedup();
    Ok(ResolvedUser { uid, gid, groups: supplementary, home: if home.is_empty() { "/".to_owned() } else { home } })
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

impl<'a> PasswdEntry<'a> {
    fn parse(line: &'a str) -> Option<PasswdEntry<'a>> {
        let fields: Vec<&str> = line.split(':').collect();
        if line.starts_with('#') || fields.len() < 4 {
            return None;
        }
        Some(PasswdEntry {
            name: fields[0],
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
            home: fields.get(5).copied().unwrap_or("/"),
        })
    }
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

impl<'a> GroupEntry<'a> {
    fn parse(line: &'a str) -> Option<GroupEntry<'a>> {
        let fields: Vec<&str> = line.split(':').collect();
        if line.starts_with('#') || fields.len() < 3 {
            return None;
        }
        let members = fields.get(3).map(|list| list.split(',').filter(|name| !name.is_empty()).collect());
        Some(GroupEntry { name: fields[0], gid: fields[2].parse().ok()?, members: members.unwrap_or_default() })
    }
}

/// The layer directories of a container, highest first: its upper directory, then the image's layers.
pub fn view_of(upper: &Path, layer_dirs_lowest_first: &[PathBuf]) -> Vec<PathBuf> {
    std::iter::once(upper.to_path_buf()).chain(layer_dirs_lowest_first.iter().rev().cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
                          app:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nwheel:x:10:app,other\napp:x:1000:\n";

    #[test]
    fn names_resolve_through_passwd_with_supplementary_groups() {
        let app = resolve_user("c", "app", PASSWD, GROUP).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups.clone(), app.home.as_str()),
            (1000, 1000, vec![1000, 10], "/home/app")
        );
        let nobody = resolve_user("c", "nobody", PASSWD, GROUP).unwrap();
        assert_eq!((nobody.uid, nobody.gid), (65534, 65534));
        assert_eq!(resolve_user("c", "", PASSWD, GROUP).unwrap().uid, 0);
    }

    #[test]
    fn numeric_ids_need_no_files() {
        let user = resolve_user("c", "4242:77", "", "").unwrap();
        assert_eq!((user.uid, user.gid, user.groups), (4242, 77, vec![77]));
        assert_eq!(resolve_user("c", "1000", PASSWD, GROUP).unwrap().gid, 1000);
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(matches!(resolve_user("c", "ghost", PASSWD, GROUP), Err(UserError::UnknownUser { .. })));
        assert!(matches!(resolve_user("c", "app:ghosts", PASSWD, GROUP), Err(UserError::UnknownGroup { .. })));
        assert_eq!(resolve_user("c", "app:wheel", PASSWD, GROUP).unwrap().gid, 10);
    }

    #[test]
    fn an_explicit_group_brings_no_supplementary_groups() {
        let user = resolve_user("c", "app:app", PASSWD, GROUP).unwrap();
        assert_eq!((user.gid, user.groups), (1000, vec![1000]), "not wheel, which lists app");
    }
}
