//! The catalogs nvrctl has seen, kept under `~/.cache/nvrctl/` (`$XDG_CACHE_HOME/nvrctl/`), so
//! a reconnect to a box does not fetch its catalog again: over a 256 kbit/s link a site's
//! catalog is seconds, its snapshot half a second.
//!
//! Owns two kinds of files: `catalogs/<hash>-<entries>.pack`, a catalog as the wire format's
//! compressed pack (base 0), named by its id; and `targets/<target>`, the id of the catalog last
//! seen at a target (`HOST:PORT`), as `entries hash` in text. Receives catalogs from a
//! [`StateView`] once a session has one; emits the known id for a target and its entries. Every
//! write goes to a temporary file renamed into place, so a concurrent nvrctl or a crash never
//! leaves half a file; a file that does not decode or whose hash differs is ignored (and the
//! box sends the catalog again). Blocking file I/O on the caller's thread.

use std::io;
use std::path::{Path, PathBuf};

use edgenvr_proto::pack::{decode_catalog_pack, encode_catalog_pack};
use edgenvr_proto::{CatalogEntry, CatalogHasher, CatalogId, Kind};

use crate::view::{StateView, MAX_CATALOG_BYTES};

/// Where the cache lives: `$XDG_CACHE_HOME/nvrctl`, else `~/.cache/nvrctl`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("nvrctl"))
}

/// The catalog cache in one directory.
#[derive(Clone, Debug)]
pub struct CatalogCache {
    dir: PathBuf,
}

impl CatalogCache {
    /// A cache in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CatalogCache { dir: dir.into() }
    }

    /// The cache in [`default_cache_dir`], if there is a home to put it in.
    pub fn at_default() -> Option<Self> {
        default_cache_dir().map(Self::new)
    }

    fn target_file(&self, target: &str) -> PathBuf {
        let key: String = target
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join("targets").join(key)
    }

    fn catalog_file(&self, id: CatalogId) -> PathBuf {
        self.dir
            .join("catalogs")
            .join(format!("{:016x}-{}.pack", id.hash, id.entries))
    }

    /// The id of the catalog last seen at `target`, if the cache has one (a small file read:
    /// cheap enough to do before a hello).
    pub fn known(&self, target: &str) -> Option<CatalogId> {
        let text = std::fs::read_to_string(self.target_file(target)).ok()?;
        let mut words = text.split_whitespace();
        let entries: u32 = words.next()?.parse().ok()?;
        let hash = u64::from_str_radix(words.next()?, 16).ok()?;
        let id = CatalogId { entries, hash };
        self.catalog_file(id).exists().then_some(id)
    }

    /// Forgets what was last seen at `target` (its catalog file turned out unusable).
    pub fn forget(&self, target: &str) {
        let _ = std::fs::remove_file(self.target_file(target));
    }

    /// The entries of catalog `id` into `view`, if the cache holds it intact (decoded and its
    /// hash checked before anything is added, so a damaged file adds nothing).
    pub fn load_into(&self, id: CatalogId, view: &mut StateView) -> bool {
        let Ok(pack) = std::fs::read(self.catalog_file(id)) else {
            return false;
        };
        let mut hasher = CatalogHasher::new();
        let mut entries = Vec::new();
        let decoded = decode_catalog_pack(&pack, MAX_CATALOG_BYTES, |entry| {
            hasher.add(&entry);
            entries.push((
                entry.id,
                entry.name.to_owned(),
                owned(&entry.kind),
                entry.role,
            ));
        });
        if decoded != Ok(0) || hasher.finish() != id {
            return false;
        }
        for (id, name, kind, role) in &entries {
            view.add_entry(&CatalogEntry {
                id: *id,
                name,
                kind: kind.as_kind(),
                role: *role,
            });
        }
        true
    }

    /// The catalog last seen at `target` and its entries, if both are in the cache and check
    /// out: the entries are given to `entry` in order.
    pub fn load(&self, target: &str, mut entry: impl FnMut(CatalogEntry<'_>)) -> Option<CatalogId> {
        let id = self.known(target)?;
        let mut view = StateView::default();
        if !self.load_into(id, &mut view) {
            return None;
        }
        view.catalog_entries().for_each(&mut entry);
        Some(id)
    }

    /// Keeps `view`'s catalog as the one last seen at `target`.
    pub fn store(&self, target: &str, view: &StateView) -> io::Result<CatalogId> {
        let entries: Vec<CatalogEntry<'_>> = view.catalog_entries().collect();
        let mut hasher = CatalogHasher::new();
        entries.iter().for_each(|e| hasher.add(e));
        let id = hasher.finish();
        let file = self.catalog_file(id);
        if !file.exists() {
            write_atomically(&file, &encode_catalog_pack(0, &entries))?;
        }
        write_atomically(
            &self.target_file(target),
            format!("{} {:016x}\n", id.entries, id.hash).as_bytes(),
        )?;
        Ok(id)
    }
}

/// A catalog entry's kind, owned for a moment.
enum OwnedKind {
    Binary,
    Scalar(String),
    Complex,
    Unsigned(String),
}

impl OwnedKind {
    fn as_kind(&self) -> Kind<'_> {
        match self {
            OwnedKind::Binary => Kind::Binary,
            OwnedKind::Scalar(unit) => Kind::Scalar { unit },
            OwnedKind::Complex => Kind::Complex,
            OwnedKind::Unsigned(unit) => Kind::Unsigned { unit },
        }
    }
}

fn owned(kind: &Kind<'_>) -> OwnedKind {
    match kind {
        Kind::Binary => OwnedKind::Binary,
        Kind::Scalar { unit } => OwnedKind::Scalar((*unit).to_owned()),
        Kind::Complex => OwnedKind::Complex,
        Kind::Unsigned { unit } => OwnedKind::Unsigned((*unit).to_owned()),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use edgenvr_proto::{Kind, Role, SensorId};

    use super::*;

    fn view_with(names: &[&str]) -> StateView {
        let mut view = StateView::default();
        for (id, name) in names.iter().enumerate() {
            view.add_entry(&CatalogEntry {
                id: SensorId(id as u32),
                name,
                kind: Kind::Binary,
                role: Role::Sensor,
            });
        }
        view
    }

    #[test]
    fn a_stored_catalog_loads_back_for_its_target_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CatalogCache::new(dir.path());
        let view = view_with(&["pir_a", "pir_b", "door"]);
        let id = cache.store("box.lan:7420", &view).unwrap();
        let mut loaded = StateView::default();
        assert_eq!(
            cache.load("box.lan:7420", |e| loaded.add_entry(&e)),
            Some(id)
        );
        assert_eq!(loaded.held_catalog_id(), id);
        assert_eq!(loaded.sensors[&2].name, "door");
        assert_eq!(cache.load("other:7420", |_| {}), None);
    }

    #[test]
    fn a_damaged_cache_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CatalogCache::new(dir.path());
        let id = cache.store("box:1", &view_with(&["a", "b"])).unwrap();
        std::fs::write(cache.catalog_file(id), b"not a pack").unwrap();
        let mut seen = 0;
        assert_eq!(cache.load("box:1", |_| seen += 1), None);
        assert_eq!(seen, 0);
    }
}
