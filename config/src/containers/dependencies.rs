//! Checks `depends_on` across containers (every name exists, no cycles) and gives the start order.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::reader::Reader;

/// What a container waits for in a `depends_on` container before it starts (Compose's `condition`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DependencyCondition {
    /// Running (the short list form, Compose's `service_started`).
    #[default]
    Started,
    /// Running and healthy (Compose's `service_healthy`); one without a health check counts when it runs.
    Healthy,
    /// Exited with 0 after running (Compose's `service_completed_successfully`).
    CompletedSuccessfully,
}

/// `started`, `healthy`, `completed_successfully`, or Compose's `service_*` spellings of them.
pub fn parse_condition(text: &str) -> Result<DependencyCondition, String> {
    match text.strip_prefix("service_").unwrap_or(text) {
        "started" => Ok(DependencyCondition::Started),
        "healthy" => Ok(DependencyCondition::Healthy),
        "completed_successfully" => Ok(DependencyCondition::CompletedSuccessfully),
        _ => Err(format!("{text:?} is not one of started, healthy, completed_successfully")),
    }
}

impl std::fmt::Display for DependencyCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DependencyCondition::Started => "started",
            DependencyCondition::Healthy => "healthy",
            DependencyCondition::CompletedSuccessfully => "completed_successfully",
        })
    }
}

/// One `depends_on` item as written: the name, its span and key path.
pub(crate) struct DependencyRef {
    pub name: String,
    pub condition: DependencyCondition,
    pub span: Range<usize>,
    pub path: String,
}

/// Reports unknown names and cycles; `containers` is in file order.
pub(crate) fn check(reader: &mut Reader, containers: &[(String, Vec<DependencyRef>)]) {
    let known: Vec<&str> = containers.iter().map(|(name, _)| name.as_str()).collect();
    for (name, dependencies) in containers {
        for dependency in dependencies {
            if dependency.name == *name {
                reader.error(dependency.span.clone(), &dependency.path, format!("{name:?} depends on itself"));
            } else if !known.contains(&dependency.name.as_str()) {
                let message = format!(
                    "{:?} is not a container in this file; containers are {}",
                    dependency.name,
                    known.join(", ")
                );
                reader.error(dependency.span.clone(), &dependency.path, message);
            }
        }
    }
    let graph: BTreeMap<&str, &Vec<DependencyRef>> =
        containers.iter().map(|(name, dependencies)| (name.as_str(), dependencies)).collect();
    let mut state: BTreeMap<&str, Visit> = BTreeMap::new();
    for name in &known {
        let mut stack = Vec::new();
        visit(reader, &graph, name, &mut state, &mut stack);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    Open,
    Done,
}

/// Depth-first search; a dependency that is still open closes a cycle, reported at the item that closes it.
fn visit<'a>(
    reader: &mut Reader,
    graph: &BTreeMap<&'a str, &'a Vec<DependencyRef>>,
    name: &'a str,
    state: &mut BTreeMap<&'a str, Visit>,
    stack: &mut Vec<&'a str>,
) {
    if state.contains_key(name) {
        return;
    }
    state.insert(name, Visit::Open);
    stack.push(name);
    for dependency in graph.get(name).map(|list| list.iter()).into_iter().flatten() {
        let Some((&target, _)) = graph.get_key_value(dependency.name.as_str()) else { continue };
        if target == name {
            continue;
        }
        match state.get(target) {
            Some(Visit::Open) => {
                let start = stack.iter().position(|open| *open == target).unwrap_or(0);
                let mut cycle: Vec<&str> = stack[start..].to_vec();
                cycle.push(target);
                let message = format!("dependency cycle {}", cycle.join(" -> "));
                reader.error(dependency.span.clone(), &dependency.path, message);
            }
            Some(Visit::Done) => {}
            None => visit(reader, graph, target, state, stack),
        }
    }
    stack.pop();
    state.insert(name, Visit::Done);
}

/// Container names so that each comes after the ones it depends on; file order otherwise. Assumes no cycles
/// (a cycle's members come in file order).
pub fn start_order(containers: &[(&str, &[String])]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut remaining: Vec<&(&str, &[String])> = containers.iter().collect();
    while !remaining.is_empty() {
        let ready = remaining.iter().position(|(_, dependencies)| {
            dependencies
                .iter()
                .all(|dependency| order.contains(dependency) || !containers.iter().any(|(name, _)| name == dependency))
        });
        let index = ready.unwrap_or(0);
        order.push(remaining.remove(index).0.to_owned());
    }
    order
}

/// The order of a shutdown: groups that stop together, each container in a group before the ones it depends on.
/// The first group is what nothing (of `containers`) depends on; each next one what only earlier groups depended
/// on. Dependencies outside `containers` are ignored; a cycle's members stop together, last.
pub fn stop_levels(containers: &[(&str, &[String])]) -> Vec<Vec<String>> {
    type Container<'a> = &'a (&'a str, &'a [String]);
    let mut levels = Vec::new();
    let mut remaining: Vec<Container> = containers.iter().collect();
    while !remaining.is_empty() {
        let depended_on = |name: &str| {
            remaining.iter().any(|(other, dependencies)| *other != name && dependencies.iter().any(|dep| dep == name))
        };
        let (level, rest): (Vec<Container>, Vec<Container>) =
            remaining.iter().partition(|(name, _)| !depended_on(name));
        if level.is_empty() {
            levels.push(rest.iter().map(|(name, _)| (*name).to_owned()).collect());
            break;
        }
        levels.push(level.iter().map(|(name, _)| (*name).to_owned()).collect());
        remaining = rest;
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_dependents_first_and_the_independent_at_once() {
        let web = ["db".to_owned(), "cache".to_owned()];
        let cache = ["db".to_owned()];
        let levels = stop_levels(&[("web", &web), ("cache", &cache), ("db", &[]), ("cron", &[]), ("log", &[])]);
        assert_eq!(levels, [vec!["web", "cron", "log"], vec!["cache"], vec!["db"]]);
        let a = ["b".to_owned()];
        let b = ["a".to_owned()];
        assert_eq!(stop_levels(&[("a", &a), ("b", &b), ("c", &[])]), [vec!["c"], vec!["a", "b"]]);
    }

    #[test]
    fn starts_dependencies_first() {
        let web = ["db".to_owned(), "cache".to_owned()];
        let cache = ["db".to_owned()];
        let order = start_order(&[("web", &web), ("cache", &cache), ("db", &[])]);
        assert_eq!(order, ["db", "cache", "web"]);
    }
}
