//! The placement cache: where actors live, as this host last learned it from the store. An
//! entry lasts at most five seconds, and never longer than the actor's idle timeout.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::duration_ms;
use crate::model::{ActorKey, Placement};

/// Placements are cached at most this long (and never longer than the actor's idle timeout).
const PLACEMENT_CACHE_MAX_MS: i64 = 5_000;
/// How many placements are cached at most.
const PLACEMENT_CACHE_MAX: usize = 100_000;

/// Where actors live, as this host last learned it.
#[derive(Default)]
pub(crate) struct PlacementCache {
    entries: Mutex<HashMap<ActorKey, (Placement, i64)>>,
}

impl PlacementCache {
    /// The cached placement of `key`, if it has not expired by `now_ms`.
    pub(crate) fn get(&self, key: &ActorKey, now_ms: i64) -> Option<Placement> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, expires)| *expires > now_ms)
            .map(|(p, _)| p.clone())
    }

    /// Remember `placement` of `key`, learned at `now_ms`.
    pub(crate) fn put(&self, key: &ActorKey, placement: &Placement, now_ms: i64) {
        let ttl = placement.idle_timeout.map_or(PLACEMENT_CACHE_MAX_MS, |d| {
            duration_ms(d).min(PLACEMENT_CACHE_MAX_MS)
        });
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > PLACEMENT_CACHE_MAX {
                entries.retain(|_, (_, expires)| *expires > now_ms);
                if entries.len() > PLACEMENT_CACHE_MAX / 2 {
                    // Mostly live entries: start over rather than scan them again on every put.
                    entries.clear();
                }
            }
            entries.insert(key.clone(), (placement.clone(), now_ms.saturating_add(ttl)));
        }
    }

    /// Forget the placement of `key` (it was found stale).
    pub(crate) fn invalidate(&self, key: &ActorKey) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}
