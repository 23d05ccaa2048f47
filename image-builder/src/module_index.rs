//! Reads depmod's output (`modules.dep`, `modules.softdep`, `modules.alias`, `modules.builtin`) into an index of
//! module names, files, dependencies and aliases.
//!
//! Module names use `_`; file names and aliases may use `-` (`crc32c-intel.ko`), so every name is normalized.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ModuleIndexError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("modules.dep line {line}: expected `path.ko: dependency.ko ...`")]
    BadDepLine { line: usize },
}

/// One loadable module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Path relative to the modules directory, e.g. `kernel/fs/erofs/erofs.ko`.
    pub path: String,
    /// Names of the modules it needs, as `modules.dep` lists them.
    pub deps: Vec<String>,
}

/// Soft dependencies of one module, as written: module names or aliases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoftDeps {
    pub pre: Vec<String>,
    pub post: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    modules: BTreeMap<String, ModuleInfo>,
    softdeps: BTreeMap<String, SoftDeps>,
    /// (normalized pattern, module name), in file order.
    aliases: Vec<(String, String)>,
    builtin: BTreeSet<String>,
}

/// The module name for a name, alias or file path: the file stem without `.ko[.xz|.zst|.gz]`, `-` as `_`.
pub fn module_name(path_or_name: &str) -> String {
    let file = path_or_name.rsplit('/').next().unwrap_or(path_or_name);
    let stem = file.split_once(".ko").map_or(file, |(stem, _)| stem);
    normalize(stem)
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

impl ModuleIndex {
    /// Reads the depmod files of a modules directory (`lib/modules/<release>`).
    pub fn load(dir: &Path) -> Result<Self, ModuleIndexError> {
        let read = |name: &str, required: bool| {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(text),
                Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                Err(source) => Err(ModuleIndexError::Read { path, source }),
            }
        };
        Self::parse(
            &read("modules.dep", true)?,
            &read("modules.softdep", false)?,
            &read("modules.alias", false)?,
            &read("modules.builtin", false)?,
        )
    }

    pub fn parse(dep: &str, softdep: &str, alias: &str, builtin: &str) -> Result<Self, ModuleIndexError> {
        let mut index = ModuleIndex::default();
        for (number, line) in dep.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (path, deps) = line.split_once(':').ok_or(ModuleIndexError::BadDepLine { line: number + 1 })?;
            let deps = deps.split_whitespace().map(module_name).collect();
            index.modules.insert(module_name(path), ModuleInfo { path: path.trim().to_owned(), deps });
        }
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            let (Some("softdep"), Some(module)) = (words.next(), words.next()) else { continue };
            let entry = index.softdeps.entry(normalize(module)).or_default();
            // As in kmod: names before the first `pre:`/`post:` are ignored.
            let mut list: Option<&mut Vec<String>> = None;
            for word in words {
                match (word, list.as_mut()) {
                    ("pre:", _) => list = Some(&mut entry.pre),
                    ("post:", _) => list = Some(&mut entry.post),
                    (name, Some(list)) => list.push(name.to_owned()),
                    (_, None) => {}
                }
            }
        }
        for line in alias.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(pattern), Some(module)) = (words.next(), words.next(), words.next()) {
                index.aliases.push((normalize(pattern), normalize(module)));
            }
        }
        index.builtin = builtin.lines().filter(|line| !line.trim().is_empty()).map(module_name).collect();
        Ok(index)
    }

    pub fn module(&self, name: &str) -> Option<&ModuleInfo> {
        self.modules.get(name)
    }

    pub fn softdeps(&self, name: &str) -> Option<&SoftDeps> {
        self.softdeps.get(name)
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// The loadable modules a name stands for: the module of that name, or else every module with a matching alias.
    /// Providers named `*_generic` come first: they work on every CPU (`crc32c_intel` fails with ENODEV without
    /// SSE4.2, as under QEMU TCG).
    pub fn resolve(&self, name: &str) -> Vec<String> {
        let name = normalize(name);
        if self.modules.contains_key(&name) {
            return vec![name];
        }
        let mut found: Vec<String> = self
            .aliases
            .iter()
            .filter(|(pattern, module)| self.modules.contains_key(module) && glob_match(pattern, &name))
            .map(|(_, module)| module.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        found.sort_by_key(|module| (!module.ends_with("_generic"), module.clone()));
        found
    }
}

/// `fnmatch` for the `*` and `?` that modules.alias patterns use.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&byte) if byte == b'?' || byte == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&byte| byte == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized() {
        assert_eq!(module_name("kernel/arch/x86/crypto/crc32c-intel.ko"), "crc32c_intel");
        assert_eq!(module_name("kernel/drivers/md/dm-mod.ko.xz"), "dm_mod");
        assert_eq!(module_name("virtio-blk"), "virtio_blk");
    }

    #[test]
    fn globs_match_like_fnmatch() {
        assert!(glob_match(
            "cpu:type:x86,ven*fam*mod*:feature:*0094*",
            "cpu:type:x86,ven0000fam0006mod003a:feature:,0094,"
        ));
        assert!(glob_match("crc32c", "crc32c"));
        assert!(glob_match("a?c*", "abc"));
        assert!(!glob_match("crc32c", "crc32"));
        assert!(!glob_match("a*b", "acbc"));
    }

    #[test]
    fn softdep_words_before_pre_or_post_are_ignored() {
        let index = ModuleIndex::parse("", "softdep cifs gcm\nsoftdep x pre: a b post: c\n", "", "").unwrap();
        assert_eq!(index.softdeps("cifs"), Some(&SoftDeps::default()));
        let x = index.softdeps("x").unwrap();
        assert_eq!(
            (x.pre.as_slice(), x.post.as_slice()),
            (["a".to_owned(), "b".to_owned()].as_slice(), ["c".to_owned()].as_slice())
        );
    }
}
