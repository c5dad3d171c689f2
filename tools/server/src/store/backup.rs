//! The database side of `rustupdate-server backup` (see `crate::backup`).

use super::database::Store;
use anyhow::{Context, Result};

impl Store {
    /// SQLite only: a consistent copy of the whole database into the new file `path`
    /// (`VACUUM INTO`, one read transaction; writers go on meanwhile under WAL).
    pub async fn copy_sqlite_into(&self, path: &std::path::Path) -> Result<()> {
        let target = path
            .to_str()
            .with_context(|| format!("{} is not UTF-8", path.display()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await
            .with_context(|| format!("copying the database into {target}"))?;
        Ok(())
    }
}
