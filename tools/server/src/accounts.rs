//! `rustupdate-server user …` and `token …`: operator accounts and their API tokens, managed on
//! the server host against its database (the same settings the server runs with). Not over HTTP:
//! whoever decides who is admin must already hold the host. Every change is in the audit log with
//! the actor `host:<login name>`.

use crate::cli::{ServeArgs, TokenCommand, UserCommand};
use crate::config::Settings;
use crate::passwords;
use crate::roles::Role;
use crate::store::{Store, now_ms};
use crate::tokens;
use anyhow::{Context, Result, anyhow, bail};
use std::io::BufRead;

fn role(text: &str) -> Result<Role> {
    text.parse().map_err(|e: String| anyhow!(e))
}

/// The first line of standard input, checked as a new password.
fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    passwords::check(&password).map_err(|e| anyhow!(e))?;
    Ok(password)
}

/// A name is 1 to 64 characters of letters, digits and `. _ @ -` (it is shown in the audit log).
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if !ok {
        bail!("name {name:?} is not 1 to 64 characters of A-Z a-z 0-9 . _ @ -");
    }
    Ok(())
}

fn host_actor() -> String {
    let login = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("host:{login}")
}

fn run<F>(server: &ServeArgs, work: F) -> Result<()>
where
    F: AsyncFnOnce(&Store) -> Result<()>,
{
    let settings = Settings::from_args(server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = Store::open(&settings.database_url).await?;
        work(&store).await
    })
}

async fn audit(store: &Store, action: &str, target: &str, detail: &str) -> Result<()> {
    store.add_audit(&host_actor(), action, target, detail).await
}

pub fn user(command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Add {
            name,
            role: r,
            server,
        } => {
            check_name(&name)?;
            let r = role(&r)?;
            let hash = passwords::hash(&read_password()?)?;
            run(&server, async |store| {
                if !store.add_user(&name, r, &hash).await? {
                    bail!("user {name:?} exists already");
                }
                audit(store, "user-add", &format!("user {name}"), r.as_str()).await?;
                println!("added user {name} ({r})");
                Ok(())
            })
        }
        UserCommand::List { server } => run(&server, async |store| {
            for u in store.users().await? {
                println!("{}\t{}", u.name, u.role);
            }
            Ok(())
        }),
        UserCommand::SetRole {
            name,
            role: r,
            server,
        } => {
            let r = role(&r)?;
            run(&server, async |store| {
                if !store.set_user_role(&name, r).await? {
                    bail!("no user {name:?}");
                }
                audit(store, "user-role", &format!("user {name}"), r.as_str()).await?;
                println!("user {name} is now {r}");
                Ok(())
            })
        }
        UserCommand::SetPassword { name, server } => {
            let hash = passwords::hash(&read_password()?)?;
            run(&server, async |store| {
                if !store.set_user_password(&name, &hash).await? {
                    bail!("no user {name:?}");
                }
                audit(store, "user-password", &format!("user {name}"), "").await?;
                println!("changed the password of {name}; its sessions ended");
                Ok(())
            })
        }
        UserCommand::Remove { name, server } => run(&server, async |store| {
            if !store.remove_user(&name).await? {
                bail!("no user {name:?}");
            }
            audit(store, "user-remove", &format!("user {name}"), "").await?;
            println!("removed user {name} with its sessions and tokens");
            Ok(())
        }),
    }
}

pub fn token(command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create {
            user,
            label,
            role: r,
            expires_in_days,
            server,
        } => {
            let r = role(&r)?;
            if label.trim().is_empty() || label.len() > 64 {
                bail!("a label is 1 to 64 characters");
            }
            run(&server, async |store| {
                let account = store
                    .user(&user)
                    .await?
                    .ok_or_else(|| anyhow!("no user {user:?}"))?;
                let token = tokens::generate()?;
                let expires = expires_in_days.map(|days| now_ms() + i64::from(days) * 86_400_000);
                let id = store
                    .add_api_token(account.id, &label, r, &tokens::hash(&token), expires)
                    .await?;
                let detail = format!("{label:?}, role {r}");
                audit(
                    store,
                    "token-create",
                    &format!("token {id} of {user}"),
                    &detail,
                )
                .await?;
                if r > account.role {
                    eprintln!(
                        "note: {user} has the role {}; the token acts with that role, not {r}",
                        account.role
                    );
                }
                println!("{token}");
                Ok(())
            })
        }
        TokenCommand::List { server } => run(&server, async |store| {
            for t in store.api_tokens().await? {
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(_), _) => "revoked",
                    (None, Some(at)) if at <= now_ms() => "expired",
                    _ => "live",
                };
                println!("{}\t{}\t{}\t{}\t{state}", t.id, t.user, t.label, t.role);
            }
            Ok(())
        }),
        TokenCommand::Revoke { id, server } => run(&server, async |store| {
            if !store.revoke_api_token(id).await? {
                bail!("no live token {id}");
            }
            audit(store, "token-revoke", &format!("token {id}"), "").await?;
            println!("revoked token {id}");
            Ok(())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_names() {
        assert!(check_name("alice").is_ok());
        assert!(check_name("ops.bot@site-1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("<script>").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
    }
}
