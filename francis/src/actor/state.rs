//! [`State<T>`]: a typed, cached handle on one actor's durable state.
//!
//! Reads are cached for the life of the activation (single activation means nobody else writes
//! it meanwhile). Writes need `&mut self`, so a shared (`&self`) method cannot write state: the
//! compiler enforces the read/write split.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::error::Error;
use crate::model::Envelope;
use crate::model::{ActorKey, ListStatesOptions, Store};

/// One page of [`State::list`]: `(actor ID, state)` pairs ordered by ID.
#[derive(Debug, Clone, PartialEq)]
pub struct StatePage<T> {
    /// The entries of this page.
    pub entries: Vec<(String, T)>,
    /// Whether more entries follow; pass the last ID as `after` to get them.
    pub has_more: bool,
}

impl<T> StatePage<T> {
    /// The cursor for the next page, if there is one.
    pub fn next_after(&self) -> Option<&str> {
        if self.has_more {
            self.entries.last().map(|(id, _)| id.as_str())
        } else {
            None
        }
    }
}

/// A typed handle on one actor's durable state (MessagePack in the store).
pub struct State<T> {
    store: Arc<dyn Store>,
    key: ActorKey,
    cache: OnceCell<Option<T>>,
}

impl<T> std::fmt::Debug for State<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("key", &self.key)
            .field("cached", &self.cache.initialized())
            .finish()
    }
}

impl<T> State<T> {
    pub(crate) fn new(store: Arc<dyn Store>, key: ActorKey) -> Self {
        State {
            store,
            key,
            cache: OnceCell::new(),
        }
    }
}

impl<T> State<T>
where
    T: Serialize + DeserializeOwned + Send + Sync,
{
    /// The stored value, or `None` if there is none (or it expired). Loaded once, then cached.
    pub async fn load(&self) -> Result<Option<&T>, Error> {
        let slot = self
            .cache
            .get_or_try_init(|| async {
                match self.store.get_state(&self.key).await? {
                    Some(bytes) => {
                        Ok::<_, Error>(Some(Envelope::from_msgpack_bytes(bytes).decode::<T>()?))
                    }
                    None => Ok(None),
                }
            })
            .await?;
        Ok(slot.as_ref())
    }

    /// The stored value, or `T::default()` if there is none.
    pub async fn get(&self) -> Result<T, Error>
    where
        T: Default + Clone,
    {
        Ok(self.load().await?.cloned().unwrap_or_default())
    }

    /// Store a new value (no expiry; clears any previous TTL).
    pub async fn set(&mut self, value: T) -> Result<(), Error> {
        self.write(value, None).await
    }

    /// Store a new value that expires after `ttl`.
    pub async fn set_with_ttl(&mut self, value: T, ttl: Duration) -> Result<(), Error> {
        self.write(value, Some(ttl)).await
    }

    /// Load the value (or the default), change it with `f`, store it, and return the new value.
    pub async fn update<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R, Error>
    where
        T: Default + Clone,
    {
        let mut value = self.get().await?;
        let out = f(&mut value);
        self.write(value, None).await?;
        Ok(out)
    }

    /// Delete the state; returns whether there was any.
    pub async fn delete(&mut self) -> Result<bool, Error> {
        self.cache = OnceCell::new_with(Some(None));
        match self.store.delete_state(&self.key).await {
            Ok(existed) => Ok(existed),
            Err(e) => {
                // The delete may or may not have happened: reload next time.
                self.cache = OnceCell::new();
                Err(e.into())
            }
        }
    }

    /// List the states of every actor of this actor's type, ordered by ID, a page at a time
    /// (`options.limit`: 0 means 100, at most 1000; `options.after`: the last ID of the
    /// previous page). Reads the store directly, bypassing this handle's cache.
    pub async fn list(&self, options: &ListStatesOptions) -> Result<StatePage<T>, Error> {
        let options = ListStatesOptions {
            include_data: true,
            ..options.clone()
        };
        let list = self
            .store
            .list_states(&self.key.actor_type, &options)
            .await?;
        let mut entries = Vec::with_capacity(list.entries.len());
        for entry in list.entries {
            let value =
                Envelope::from_msgpack_bytes(entry.data.unwrap_or_default()).decode::<T>()?;
            entries.push((entry.actor_id, value));
        }
        Ok(StatePage {
            entries,
            has_more: list.has_more,
        })
    }

    async fn write(&mut self, value: T, ttl: Option<Duration>) -> Result<(), Error> {
        let bytes = Envelope::encode(&value)?.into_bytes();
        self.store.set_state(&self.key, &bytes, ttl).await?;
        // Cache only what is durably stored.
        self.cache = OnceCell::new_with(Some(Some(value)));
        Ok(())
    }
}
