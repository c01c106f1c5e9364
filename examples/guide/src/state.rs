//! "State": a web session kept as durable state with a TTL, paged listing of every session,
//! and a state type that gained a field.

use std::time::Duration;

use francis::prelude::*;
use francis::store::ListStatesOptions;

// ANCHOR: types
/// A logged-in session.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SessionData {
    /// Who is logged in.
    pub user: String,
    /// How many pages they viewed.
    pub views: u64,
}

/// How long a session lives after its last write.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 60);
// ANCHOR_END: types

/// What can go wrong with a session.
#[derive(Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum SessionError {
    /// Nobody is logged in on this session.
    #[error("not logged in")]
    NotLoggedIn,
    /// The state could not be read or written.
    #[error("storage failed: {0}")]
    Storage(String),
}

impl From<francis::Error> for SessionError {
    fn from(e: francis::Error) -> Self {
        SessionError::Storage(e.to_string())
    }
}

// ANCHOR: actor
/// One web session per session ID.
pub struct Session {
    data: State<SessionData>,
}

#[francis::actor]
impl Session {
    fn activate(ctx: &ActorContext) -> Self {
        Session { data: ctx.state() }
    }

    /// Start the session; it expires `SESSION_TTL` after its last write.
    pub async fn login(&mut self, user: String) -> Result<(), SessionError> {
        let data = SessionData { user, views: 0 };
        Ok(self.data.set_with_ttl(data, SESSION_TTL).await?)
    }

    /// Count a page view, which also pushes the expiry back.
    pub async fn view(&mut self) -> Result<u64, SessionError> {
        let Some(data) = self.data.load().await? else {
            return Err(SessionError::NotLoggedIn);
        };
        let data = SessionData {
            views: data.views + 1,
            ..data.clone()
        };
        let views = data.views;
        self.data.set_with_ttl(data, SESSION_TTL).await?;
        Ok(views)
    }

    /// Who is logged in, if anyone. `load` tells "no state" apart from a default value.
    pub async fn user(&self) -> Result<Option<String>, SessionError> {
        Ok(self.data.load().await?.map(|d| d.user.clone()))
    }

    /// End the session; returns whether there was one.
    pub async fn logout(&mut self) -> Result<bool, SessionError> {
        Ok(self.data.delete().await?)
    }

    /// One page of every live session of this type, ordered by session ID.
    pub async fn list_users(
        &self,
        after: Option<String>,
    ) -> Result<(Vec<(String, String)>, Option<String>), SessionError> {
        let options = ListStatesOptions {
            after,
            limit: 2,
            ..ListStatesOptions::default()
        };
        let page = self.data.list(&options).await?;
        let next = page.next_after().map(str::to_owned);
        let users = page
            .entries
            .into_iter()
            .map(|(id, data)| (id, data.user))
            .collect();
        Ok((users, next))
    }
}
// ANCHOR_END: actor

// ANCHOR: evolve
/// The first version of a profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileV1 {
    /// The display name.
    pub name: String,
}

/// The next version added a field. `#[serde(default)]` lets it read values stored by the
/// first version, which have no `language` key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileV2 {
    /// The display name.
    pub name: String,
    /// The preferred language.
    #[serde(default = "english")]
    pub language: String,
}

fn english() -> String {
    "en".to_owned()
}
// ANCHOR_END: evolve
