//! Accounts on one node: every account in memory (communities are small, and
//! a connection's check must not wait on a disk), written through to
//! `accounts.db` in the data directory — a SQLite file of its own, so account
//! writes never queue behind the message store's commits — or kept in memory
//! only with `--ephemeral`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use hearth_protocol::{Millis, UserId};
use rusqlite::{Connection, params};

use super::{Account, AccountStore, SignupInvite, StoreFailure, StoreFuture};

pub const DB_FILE: &str = "accounts.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL            -- Account as JSON
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signup_invites (
    code TEXT PRIMARY KEY,
    uses_left INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
";

#[derive(Default)]
struct State {
    accounts: HashMap<UserId, Account>,
    invites: HashMap<String, SignupInvite>,
}

pub struct LocalAccounts {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// `None` when accounts live in memory only.
    db: Option<Mutex<Connection>>,
}

/// A write decided under the state's lock: made durable, then applied.
enum Write {
    Account(Account),
    /// An invite with its uses left (none: it goes).
    Invite(SignupInvite),
    /// Invites expired by this time go.
    Prune(Millis),
}

impl State {
    fn apply(&mut self, writes: Vec<Write>) {
        for write in writes {
            match write {
                Write::Account(account) => {
                    self.accounts.insert(account.name.clone(), account);
                }
                Write::Invite(invite) if invite.uses_left == 0 => {
                    self.invites.remove(&invite.code);
                }
                Write::Invite(invite) => {
                    self.invites.insert(invite.code.clone(), invite);
                }
                Write::Prune(now) => self.invites.retain(|_, invite| invite.expires_at > now),
            }
        }
    }
}

impl LocalAccounts {
    pub fn in_memory() -> LocalAccounts {
        LocalAccounts { inner: Arc::new(Inner { state: Mutex::default(), db: None }) }
    }

    /// Opens (or creates) `dir/accounts.db` and reads every account.
    pub fn open(dir: &Path) -> Result<LocalAccounts, StoreFailure> {
        let fail = |e: rusqlite::Error| StoreFailure::Unavailable(format!("{}: {e}", dir.join(DB_FILE).display()));
        std::fs::create_dir_all(dir).map_err(|e| StoreFailure::Unavailable(e.to_string()))?;
        let db = Connection::open(dir.join(DB_FILE)).map_err(fail)?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(fail)?;
        db.pragma_update(None, "synchronous", "FULL").map_err(fail)?;
        db.execute_batch(SCHEMA).map_err(fail)?;
        let mut state = State::default();
        {
            let mut rows = db.prepare("SELECT record FROM accounts").map_err(fail)?;
            for record in rows.query_map([], |row| row.get::<_, String>(0)).map_err(fail)? {
                let account: Account = serde_json::from_str(&record.map_err(fail)?)
                    .map_err(|e| StoreFailure::Unavailable(format!("an account record is unreadable: {e}")))?;
                state.accounts.insert(account.name.clone(), account);
            }
            let mut rows = db.prepare("SELECT code, uses_left, expires_at FROM signup_invites").map_err(fail)?;
            let invites = rows
                .query_map([], |row| {
                    Ok(SignupInvite {
                        code: row.get(0)?,
                        uses_left: row.get(1)?,
                        expires_at: Millis(row.get::<_, i64>(2)? as u64),
                    })
                })
                .map_err(fail)?;
            for invite in invites {
                let invite = invite.map_err(fail)?;
                state.invites.insert(invite.code.clone(), invite);
            }
        }
        Ok(LocalAccounts { inner: Arc::new(Inner { state: Mutex::new(state), db: Some(Mutex::new(db)) }) })
    }

    /// Runs `decide` on the state; when it succeeds, makes its writes durable,
    /// then applies them. The state's lock is held across the write, so two
    /// changes to one account reach the file in the order they were decided,
    /// and a failed write changes nothing.
    fn change<T: Send + 'static>(
        &self,
        decide: impl FnOnce(&State) -> Result<(T, Vec<Write>), StoreFailure> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut state = inner.state();
                let (answer, writes) = decide(&state)?;
                inner.persist(&writes).map_err(|e| StoreFailure::Unavailable(format!("writing {DB_FILE}: {e}")))?;
                state.apply(writes);
                Ok(answer)
            })
            .await
            .map_err(|e| StoreFailure::Unavailable(e.to_string()))?
        })
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, writes: &[Write]) -> rusqlite::Result<()> {
        let Some(db) = &self.db else { return Ok(()) };
        let mut db = db.lock().unwrap_or_else(|p| p.into_inner());
        let tx = db.transaction()?;
        for write in writes {
            match write {
                Write::Account(account) => {
                    let record = serde_json::to_string(account).expect("accounts serialise");
                    tx.execute(
                        "INSERT INTO accounts (name, record) VALUES (?1, ?2)
                         ON CONFLICT (name) DO UPDATE SET record = excluded.record",
                        params![account.name.as_str(), record],
                    )?;
                }
                Write::Invite(invite) if invite.uses_left == 0 => {
                    tx.execute("DELETE FROM signup_invites WHERE code = ?1", params![invite.code])?;
                }
                Write::Invite(invite) => {
                    tx.execute(
                        "INSERT INTO signup_invites (code, uses_left, expires_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (code) DO UPDATE SET uses_left = excluded.uses_left",
                        params![invite.code, invite.uses_left, invite.expires_at.0 as i64],
                    )?;
                }
                Write::Prune(now) => {
                    tx.execute("DELETE FROM signup_invites WHERE expires_at <= ?1", params![now.0 as i64])?;
                }
            }
        }
        tx.commit()
    }
}

impl AccountStore for LocalAccounts {
    fn get(&self, name: UserId) -> StoreFuture<'_, Option<Account>> {
        let found = self.inner.state().accounts.get(&name).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn create(&self, account: Account, invite: Option<String>, now: Millis) -> StoreFuture<'_, ()> {
        self.change(move |state| {
            if state.accounts.contains_key(&account.name) {
                return Err(StoreFailure::Taken);
            }
            let mut writes = Vec::new();
            if let Some(code) = invite {
                let invite = state.invites.get(&code).filter(|i| i.uses_left > 0 && i.expires_at > now);
                let mut invite = invite.ok_or(StoreFailure::InvalidInvite)?.clone();
                invite.uses_left -= 1;
                writes.push(Write::Invite(invite));
            }
            writes.push(Write::Account(account));
            Ok(((), writes))
        })
    }

    fn set_password(&self, name: UserId, password_hash: String) -> StoreFuture<'_, Account> {
        self.change(move |state| {
            let mut account = state.accounts.get(&name).ok_or(StoreFailure::NoSuchAccount)?.clone();
            account.password_hash = password_hash;
            account.generation += 1;
            Ok((account.clone(), vec![Write::Account(account.clone())]))
        })
    }

    fn set_disabled(&self, name: UserId, reason: Option<String>) -> StoreFuture<'_, Account> {
        self.change(move |state| {
            let mut account = state.accounts.get(&name).ok_or(StoreFailure::NoSuchAccount)?.clone();
            if reason.is_some() && account.disabled.is_none() {
                account.generation += 1;
            }
            account.disabled = reason;
            Ok((account.clone(), vec![Write::Account(account.clone())]))
        })
    }

    fn add_invite(&self, invite: SignupInvite, now: Millis) -> StoreFuture<'_, ()> {
        // Expired invites go when new ones come, so they never pile up.
        self.change(move |_| Ok(((), vec![Write::Prune(now), Write::Invite(invite)])))
    }

    fn list(&self) -> StoreFuture<'_, Vec<Account>> {
        let mut accounts: Vec<Account> = self.inner.state().accounts.values().cloned().collect();
        accounts.sort_by(|a, b| a.name.cmp(&b.name));
        Box::pin(async move { Ok(accounts) })
    }
}
