//! Computes the initramfs module load order: the wanted modules plus everything they need, each module after its
//! dependencies and its `softdep pre:` modules, and before its `softdep post:` modules.

use std::collections::BTreeMap;

use crate::module_index::ModuleIndex;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModuleClosureError {
    #[error("module {name:?} is neither a loadable module, an alias of one, nor built into the kernel")]
    UnknownModule { name: String },
    #[error("module {module:?} depends on {dependency:?}, which modules.dep does not list")]
    MissingDependency { module: String, dependency: String },
    #[error("modules depend on each other in a cycle: {}", .chain.join(" -> "))]
    DependencyCycle { chain: Vec<String> },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Visiting,
    Done,
}

/// A module in load order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderedModule {
    pub name: String,
    /// Relative to the modules directory.
    pub path: String,
}

/// Returns every module to load for `wanted`, in a working load order. Built-in modules are skipped.
pub fn load_order(index: &ModuleIndex, wanted: &[String]) -> Result<Vec<OrderedModule>, ModuleClosureError> {
    let mut walk = Walk { index, marks: BTreeMap::new(), stack: Vec::new(), order: Vec::new() };
    for name in wanted {
        let modules = index.resolve(name);
        if modules.is_empty() {
            if index.is_builtin(name) {
                continue;
            }
            return Err(ModuleClosureError::UnknownModule { name: name.clone() });
        }
        for module in modules {
            walk.visit(&module, true)?;
        }
    }
    Ok(walk.order)
}

struct Walk<'a> {
    index: &'a ModuleIndex,
    marks: BTreeMap<String, Mark>,
    /// The modules being visited, for naming a cycle.
    stack: Vec<String>,
    order: Vec<OrderedModule>,
}

impl Walk<'_> {
    /// Depth-first, post-order. `hard` is false for soft dependencies, whose cycles are ignored as kmod does.
    fn visit(&mut self, name: &str, hard: bool) -> Result<(), ModuleClosureError> {
        match self.marks.get(name) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) if hard => {
                let start = self.stack.iter().position(|entry| entry == name).unwrap_or(0);
                let mut chain = self.stack[start..].to_vec();
                chain.push(name.to_owned());
                return Err(ModuleClosureError::DependencyCycle { chain });
            }
            Some(Mark::Visiting) => return Ok(()),
            None => {}
        }
        let index = self.index;
        let Some(info) = index.module(name) else {
            return Err(ModuleClosureError::UnknownModule { name: name.to_owned() });
        };
        self.marks.insert(name.to_owned(), Mark::Visiting);
        self.stack.push(name.to_owned());
        let softdeps = index.softdeps(name);
        for pre in softdeps.map(|soft| soft.pre.as_slice()).unwrap_or_default() {
            for module in index.resolve(pre) {
                self.visit(&module, false)?;
            }
        }
        // modules.dep lists the full closure, nearest first; loading in reverse mirrors modprobe, and the recursion
        // keeps the order right even if a list is in another order.
        for dependency in info.deps.iter().rev() {
            if index.module(dependency).is_none() {
                return Err(ModuleClosureError::MissingDependency {
                    module: name.to_owned(),
                    dependency: dependency.clone(),
                });
            }
            self.visit(dependency, true)?;
        }
        self.stack.pop();
        self.marks.insert(name.to_owned(), Mark::Done);
        self.order.push(OrderedModule { name: name.to_owned(), path: info.path.clone() });
        for post in softdeps.map(|soft| soft.post.as_slice()).unwrap_or_default() {
            for module in index.resolve(post) {
                self.visit(&module, false)?;
            }
        }
        Ok(())
    }
}
