use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique constraint refused the row; the message names the constraint when known.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A foreign key points nowhere.
    #[error("a referenced row does not exist: {0}")]
    MissingReference(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            let name = db.constraint().unwrap_or_else(|| db.message()).to_owned();
            if db.is_unique_violation() {
                return StoreError::Conflict(name);
            }
            if db.is_foreign_key_violation() {
                return StoreError::MissingReference(name);
            }
        }
        StoreError::Database(e)
    }
}
