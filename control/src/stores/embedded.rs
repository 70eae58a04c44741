//! Embedded on-disk user store (redb), used when no PostgreSQL URL is configured.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};

use super::{NewUser, StoreError, User, UserStore};

const USERS: TableDefinition<u32, &[u8]> = TableDefinition::new("users");
const LOGINS: TableDefinition<&str, u32> = TableDefinition::new("users_by_login");
const EMAILS: TableDefinition<&str, u32> = TableDefinition::new("users_by_email");
const META: TableDefinition<&str, u32> = TableDefinition::new("meta");

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

/// Users in a redb file: one write transaction per registration, so a crash leaves either
/// the whole user (row and both unique indexes) or nothing.
#[derive(Debug, Clone)]
pub struct RedbUserStore {
    db: Arc<Database>,
}

impl RedbUserStore {
    /// Opens (or creates) the database file and its tables.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(internal)?;
        }
        let db = Database::create(path).map_err(internal)?;
        let tx = db.begin_write().map_err(internal)?;
        {
            tx.open_table(USERS).map_err(internal)?;
            tx.open_table(LOGINS).map_err(internal)?;
            tx.open_table(EMAILS).map_err(internal)?;
            tx.open_table(META).map_err(internal)?;
        }
        tx.commit().map_err(internal)?;
        Ok(RedbUserStore { db: Arc::new(db) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(internal)?
    }
}

fn read_user(db: &Database, id: u32) -> Result<Option<User>, StoreError> {
    let tx = db.begin_read().map_err(internal)?;
    let t = tx.open_table(USERS).map_err(internal)?;
    match t.get(id).map_err(internal)? {
        Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(internal)?)),
        None => Ok(None),
    }
}

#[async_trait]
impl UserStore for RedbUserStore {
    async fn create(&self, user: NewUser) -> Result<i32, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(internal)?;
            let id;
            {
                let mut logins = tx.open_table(LOGINS).map_err(internal)?;
                let mut emails = tx.open_table(EMAILS).map_err(internal)?;
                if logins.get(user.login.as_str()).map_err(internal)?.is_some() {
                    return Err(StoreError::Conflict("login"));
                }
                if emails.get(user.email.as_str()).map_err(internal)?.is_some() {
                    return Err(StoreError::Conflict("email"));
                }
                let mut meta = tx.open_table(META).map_err(internal)?;
                let next = meta.get("next_id").map_err(internal)?.map(|v| v.value()).unwrap_or(1);
                if next > i32::MAX as u32 {
                    return Err(StoreError::Internal("user ids exhausted".into()));
                }
                id = next;
                meta.insert("next_id", next + 1).map_err(internal)?;
                logins.insert(user.login.as_str(), id).map_err(internal)?;
                emails.insert(user.email.as_str(), id).map_err(internal)?;
                let row = User {
                    id: id as i32,
                    login: user.login,
                    email: user.email,
                    name: user.name,
                    password_hash: user.password_hash,
                };
                let bytes = serde_json::to_vec(&row).map_err(internal)?;
                tx.open_table(USERS).map_err(internal)?.insert(id, bytes.as_slice()).map_err(internal)?;
            }
            tx.commit().map_err(internal)?;
            Ok(id as i32)
        })
        .await
    }

    async fn by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        let login = login.to_owned();
        self.blocking(move |db| {
            let id = {
                let tx = db.begin_read().map_err(internal)?;
                let t = tx.open_table(LOGINS).map_err(internal)?;
                let v = t.get(login.as_str()).map_err(internal)?;
                v.map(|v| v.value())
            };
            match id {
                Some(id) => read_user(db, id),
                None => Ok(None),
            }
        })
        .await
    }

    async fn by_id(&self, id: i32) -> Result<Option<User>, StoreError> {
        let Ok(id) = u32::try_from(id) else { return Ok(None) };
        self.blocking(move |db| read_user(db, id)).await
    }
}
