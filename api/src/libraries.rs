//! The open libraries of a server or command, by name: the base libraries opened at start-up
//! and the themed libraries (主题库), which may be declared while the server runs.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use exchange_core::Library;

/// A cheap-clone handle on the open libraries. Every clone sees the same map, so a theme
/// declared through one (the API) is served through all (the exchange routes, the sync
/// service). A lookup takes a read lock and clones an `Arc`: no allocation, and writers (a
/// theme declaration, rare) hold the lock only to insert.
#[derive(Clone, Default)]
pub struct Libraries(Arc<RwLock<HashMap<&'static str, Arc<Library>>>>);

impl Libraries {
    /// No library yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The library named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Library>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// Adds `library` under its schema's name; returns the one it replaces, if any.
    pub fn insert(&self, library: Arc<Library>) -> Option<Arc<Library>> {
        let name = library.schema().name;
        self.0.write().unwrap_or_else(|e| e.into_inner()).insert(name, library)
    }

    /// Whether a library named `name` is open.
    pub fn contains(&self, name: &str) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).contains_key(name)
    }

    /// Every open library, by name.
    pub fn all(&self) -> Vec<(&'static str, Arc<Library>)> {
        let mut all: Vec<_> = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, library)| (*name, library.clone()))
            .collect();
        all.sort_unstable_by_key(|(name, _)| *name);
        all
    }
}

impl FromIterator<Arc<Library>> for Libraries {
    fn from_iter<I: IntoIterator<Item = Arc<Library>>>(iter: I) -> Self {
        let libraries = Self::new();
        for library in iter {
            libraries.insert(library);
        }
        libraries
    }
}
