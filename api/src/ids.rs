//! Container ids: Docker clients expect 64 hex digits and find containers by name, full id or a unique prefix of
//! it. A declared container's id is derived from its name, so it is the same across restarts and reboots.

pub use keel_config::containers::container_id;

/// What a client's reference matched among `names`.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    Found(&'a str),
    NotFound,
    /// A prefix of more than one id.
    Ambiguous,
}

/// Finds `reference` as Docker does: a name (with or without its leading `/`), a full id, or a unique id prefix.
pub fn find<'a>(reference: &str, names: &'a [String]) -> Lookup<'a> {
    let name = reference.strip_prefix('/').unwrap_or(reference);
    if let Some(found) = names.iter().find(|candidate| *candidate == name) {
        return Lookup::Found(found);
    }
    if reference.is_empty() || !reference.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Lookup::NotFound;
    }
    let reference = reference.to_ascii_lowercase();
    let mut matches = names.iter().filter(|candidate| container_id(candidate).starts_with(&reference));
    match (matches.next(), matches.next()) {
        (Some(found), None) => Lookup::Found(found),
        (Some(_), Some(_)) => Lookup::Ambiguous,
        (None, _) => Lookup::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_name_id_and_unique_prefix() {
        let names = vec!["web".to_owned(), "db".to_owned()];
        let web = container_id("web");
        assert_eq!(web.len(), 64);
        assert_eq!(find("web", &names), Lookup::Found("web"));
        assert_eq!(find("/db", &names), Lookup::Found("db"));
        assert_eq!(find(&web, &names), Lookup::Found("web"));
        assert_eq!(find(&web[..12].to_ascii_uppercase(), &names), Lookup::Found("web"));
        assert_eq!(find("nope", &names), Lookup::NotFound);
        assert_eq!(find("", &names), Lookup::NotFound);
        // Every id starts with one of 16 digits: with 40 names some prefix of one digit is shared.
        let many: Vec<String> = (0..40).map(|n| format!("c{n}")).collect();
        let shared = (0..16)
            .map(|digit| format!("{digit:x}"))
            .find(|prefix| many.iter().filter(|name| container_id(name).starts_with(prefix.as_str())).count() > 1)
            .unwrap_or_default();
        assert_eq!(find(&shared, &many), Lookup::Ambiguous);
    }
}
