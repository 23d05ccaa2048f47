//! Compares the running containers with a new config: which to start, stop, recreate, and leave alone.

use std::collections::BTreeMap;

use keel_config::ContainerConfig;

/// A container's identity for reconciliation: its config and the digest of its image in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub config: ContainerConfig,
    /// `None` when the image is not in the store (yet): not a change by itself.
    pub image_digest: Option<String>,
}

/// What to do with each container name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReconcilePlan {
    pub create: Vec<String>,
    pub remove: Vec<String>,
    pub recreate: Vec<String>,
    pub keep: Vec<String>,
}

/// Docker compose's rule: a container whose config or image changed is recreated, the others stay running.
pub fn plan(current: &BTreeMap<String, Definition>, desired: &BTreeMap<String, Definition>) -> ReconcilePlan {
    let mut plan = ReconcilePlan::default();
    for (name, wanted) in desired {
        match current.get(name) {
            None => plan.create.push(name.clone()),
            Some(existing) if changed(existing, wanted) => plan.recreate.push(name.clone()),
            Some(_) => plan.keep.push(name.clone()),
        }
    }
    plan.remove = current.keys().filter(|name| !desired.contains_key(*name)).cloned().collect();
    plan
}

fn changed(existing: &Definition, wanted: &Definition) -> bool {
    let image_changed = match (&existing.image_digest, &wanted.image_digest) {
        (Some(before), Some(now)) => before != now,
        _ => false,
    };
    definition_changed(&existing.config, &wanted.config) || image_changed
}

/// Compared on what the user wrote (so reordering keys or respelling a number keeps a container running), or on
/// the parsed configs when one was not read from user-data.
fn definition_changed(existing: &ContainerConfig, wanted: &ContainerConfig) -> bool {
    if existing.definition_digest.is_empty() || wanted.definition_digest.is_empty() {
        existing != wanted
    } else {
        existing.definition_digest != wanted.definition_digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_config::UserData;

    fn definitions(text: &str, digest: &str) -> BTreeMap<String, Definition> {
        let user_data = UserData::parse("test", text).unwrap();
        user_data
            .containers
            .into_iter()
            .map(|(name, config)| (name, Definition { config, image_digest: Some(digest.to_owned()) }))
            .collect()
    }

    #[test]
    fn new_removed_changed_and_unchanged() {
        let before = definitions(
            "[containers.a]\nimage = \"x\"\n[containers.b]\nimage = \"x\"\n[containers.c]\nimage = \"x\"\n",
            "d1",
        );
        let after = definitions(
            "[containers.a]\nimage = \"x\"\n[containers.b]\nimage = \"x\"\nenv = { A = \"1\" }\n[containers.d]\nimage = \"x\"\n",
            "d1",
        );
        let plan = plan(&before, &after);
        assert_eq!(plan.create, ["d"]);
        assert_eq!(plan.remove, ["c"]);
        assert_eq!(plan.recreate, ["b"]);
        assert_eq!(plan.keep, ["a"]);
    }

    #[test]
    fn a_new_image_digest_recreates_and_an_unknown_one_does_not() {
        let text = "[containers.a]\nimage = \"x\"\n";
        assert_eq!(plan(&definitions(text, "d1"), &definitions(text, "d2")).recreate, ["a"]);
        let mut unknown = definitions(text, "d1");
        unknown.values_mut().for_each(|definition| definition.image_digest = None);
        assert_eq!(plan(&definitions(text, "d1"), &unknown).keep, ["a"]);
    }

    #[test]
    fn reordered_keys_and_respelled_values_keep_the_container() {
        let before = "[containers.a]\nimage = \"x\"\nstop_timeout = 16\nenv = { A = \"1\", B = \"2\" }\n";
        let after = "[containers.a.env]\nB = '2'\nA = \"1\"\n[containers.a]\nstop_timeout = 0x10\nimage = \"x\"\n";
        assert_eq!(plan(&definitions(before, "d1"), &definitions(after, "d1")).keep, ["a"]);
    }
}
