/// What can go wrong starting or running the control plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database named by `control_plane.database_url` could not be opened or migrated.
    #[error("database {url}: {reason}")]
    Database {
        /// The URL with any password removed.
        url: String,
        /// What the driver said.
        reason: String,
    },
}
