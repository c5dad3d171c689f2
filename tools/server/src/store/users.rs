//! Operator accounts and their API tokens. Passwords are stored as Argon2id PHC strings
//! (`passwords.rs`), tokens as sha256 (like target tokens): a copy of the database logs nobody in.
//! Roles are stored as text and read back through `Role::from_str`, so a row edited by hand to an
//! unknown role grants nothing.

use super::database::{Store, now_ms};
use crate::roles::Role;
use anyhow::{Result, anyhow};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiTokenRow {
    pub id: i64,
    pub user: String,
    pub label: String,
    /// What the token may do: at most its user's role (the lower of the two applies).
    pub role: Role,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Who a session or an API token acts for, with the role that applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub user: String,
    pub role: Role,
}

fn role(row: &AnyRow, column: &str) -> Result<Role> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(|e: String| anyhow!(e))
}

fn user(row: &AnyRow) -> Result<UserRow> {
    Ok(UserRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role(row, "role")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
    })
}

const USER_COLUMNS: &str = "id, name, role, password_hash, created_at";

impl Store {
    /// Adds an account; `false` if the name is taken.
    pub async fn add_user(&self, name: &str, role: Role, password_hash: &str) -> Result<bool> {
        let added = sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query(sql!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn users(&self) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(sql!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user).collect()
    }

    /// Changes an account's role; `false` if there is no such account.
    pub async fn set_user_role(&self, name: &str, role: Role) -> Result<bool> {
        let changed = sqlx::query("UPDATE users SET role = $1 WHERE name = $2")
            .bind(role.as_str())
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    /// Changes an account's password and ends its sessions; `false` if there is no such account.
    pub async fn set_user_password(&self, name: &str, password_hash: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
            .bind(password_hash)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "DELETE FROM dashboard_sessions WHERE user_id IN (SELECT id FROM users WHERE name = $1)",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(changed == 1)
    }

    /// Removes an account with its sessions and API tokens; `false` if there is no such account.
    pub async fn remove_user(&self, name: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        for table in ["dashboard_sessions", "api_tokens"] {
            sqlx::query(sql!(
                "DELETE FROM {table} WHERE user_id IN (SELECT id FROM users WHERE name = $1)"
            ))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        let removed = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(removed == 1)
    }

    /// Stores a new API token of `user_id` (its sha256), returning its id.
    pub async fn add_api_token(
        &self,
        user_id: i64,
        label: &str,
        role: Role,
        token_hash: &str,
        expires_at: Option<i64>,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO api_tokens (user_id, label, role, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(user_id)
        .bind(label)
        .bind(role.as_str())
        .bind(token_hash)
        .bind(now_ms())
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Who a live (not revoked, not expired) API token acts for, with the lower of the token's
    /// and its user's role.
    pub async fn api_token_holder(&self, token_hash: &str) -> Result<Option<Holder>> {
        let row = sqlx::query(
            "SELECT u.name, u.role AS user_role, t.role AS token_role FROM api_tokens t \
             JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 AND t.revoked_at IS NULL \
             AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Holder {
            user: row.try_get("name")?,
            role: role(&row, "user_role")?.min(role(&row, "token_role")?),
        }))
    }

    pub async fn api_tokens(&self) -> Result<Vec<ApiTokenRow>> {
        let rows = sqlx::query(
            "SELECT t.id, u.name, t.label, t.role, t.created_at, t.expires_at, t.revoked_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiTokenRow {
                    id: r.try_get("id")?,
                    user: r.try_get("name")?,
                    label: r.try_get("label")?,
                    role: role(r, "role")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    /// Revokes a token; `false` if there is no such live token.
    pub async fn revoke_api_token(&self, id: i64) -> Result<bool> {
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(revoked == 1)
    }
}
