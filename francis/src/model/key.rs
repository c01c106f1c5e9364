//! Addresses: an actor's [`ActorKey`] (type and ID) and a host's [`HostId`].

use serde::{Deserialize, Serialize};

/// The address of one actor: its type and its ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActorKey {
    /// The actor type's wire name, e.g. `counter`.
    pub actor_type: String,
    /// The actor's ID within its type.
    pub actor_id: String,
}

impl ActorKey {
    /// Build a key from a type name and an ID.
    pub fn new(actor_type: impl Into<String>, actor_id: impl Into<String>) -> Self {
        ActorKey {
            actor_type: actor_type.into(),
            actor_id: actor_id.into(),
        }
    }
}

impl std::fmt::Display for ActorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.actor_type, self.actor_id)
    }
}

/// A registered host's identifier (a UUIDv7 string, time-ordered).
pub type HostId = String;

/// A new host ID (UUIDv7: time-ordered).
pub(crate) fn new_host_id() -> HostId {
    uuid::Uuid::now_v7().to_string()
}
