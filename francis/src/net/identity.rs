//! The cluster's identity in its store: a host or runtime replica compares the CAs its PSKs
//! derive with the ones the store recorded before it registers, so a process given another
//! cluster's key refuses to start instead of joining a cluster whose hosts cannot reach it.

use crate::model::{ClusterIdentity, Store, StoreError};
use crate::net::pki::ClusterCa;

/// Why a process may not use a store as its cluster's.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IdentityError {
    /// The store belongs to a cluster with other CAs.
    #[error(
        "this store belongs to another cluster: its hosts use the CA {recorded}, this process \
         derives {ours} from its runtime PSKs. Give this process the cluster's runtime PSK \
         (FRANCIS_RUNTIME_PSK). To change the cluster's key, rotate it: add the new key after \
         the current one on every host first (the book's Security chapter, Rotating the PSK). \
         If the store now belongs to a new cluster on purpose, delete its record \
         (DELETE FROM francis_cluster) and start again"
    )]
    Mismatch {
        /// This process's CA fingerprints.
        ours: String,
        /// The recorded ones.
        recorded: String,
    },
    /// The store could not be asked.
    #[error("cannot check the cluster identity of the store: {0}")]
    Store(#[from] StoreError),
}

/// Record or check `ca`'s identity in `store`; an error when another cluster owns the store.
pub(crate) async fn check_cluster_identity(
    store: &dyn Store,
    ca: &ClusterCa,
) -> Result<(), IdentityError> {
    let ours = ca.fingerprints();
    match store.claim_cluster_identity(&ours).await? {
        ClusterIdentity::Recorded => {
            tracing::info!(ca = %ca.fingerprint(), "recorded this cluster's CA in the store");
            Ok(())
        }
        ClusterIdentity::Matched => Ok(()),
        ClusterIdentity::Mismatch { recorded } => Err(IdentityError::Mismatch {
            ours: ours.join(" + "),
            recorded: recorded.join(" + "),
        }),
    }
}
