//! The accounts' rules on the local store: registration modes, invites
//! (uses and expiry on a manual clock), generations, and what survives a
//! reopen of `accounts.db`. Over real sockets and on Redis:
//! `tests/tests/accounts.rs`.

use std::sync::Arc;
use std::time::Duration;

use hearth_protocol::Millis;

use super::local::LocalAccounts;
use super::*;
use crate::auth::AuthError;
use crate::clock::ManualClock;

const START: Millis = Millis(1_800_000_000_000);

fn secret() -> Secret {
    Secret::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
}

fn accounts_on(store: Arc<dyn AccountStore>, registration: Registration, clock: &ManualClock) -> Accounts {
    let config = AccountsConfig { registration, ..AccountsConfig::default() };
    Accounts::new(store, config, secret(), Arc::new(clock.clone()), Arc::new(Hub::default()))
}

fn verified(tokens: &Tokens) -> Verified {
    auth::verify_token(&secret(), &tokens.token).unwrap()
}

#[tokio::test]
async fn invites_are_spent_and_expire_by_the_clock() {
    let clock = ManualClock::new(START);
    let accounts = accounts_on(Arc::new(LocalAccounts::in_memory()), Registration::Invite, &clock);
    let pass = "correct horse";
    assert_eq!(accounts.register("ada", pass, None).await.unwrap_err(), AccountError::InviteNeeded);
    let two = accounts.invite(2, Duration::from_secs(3600)).await.unwrap();
    accounts.register("ada", pass, Some(two.code.clone())).await.unwrap();
    assert!(matches!(accounts.register("ada", pass, Some(two.code.clone())).await, Err(AccountError::Taken(_))));
    accounts.register("bo", pass, Some(two.code.clone())).await.unwrap();
    assert_eq!(accounts.register("cy", pass, Some(two.code.clone())).await.unwrap_err(), AccountError::InvalidInvite);
    let soon = accounts.invite(5, Duration::from_secs(60)).await.unwrap();
    clock.advance(Duration::from_secs(61));
    assert_eq!(accounts.register("cy", pass, Some(soon.code)).await.unwrap_err(), AccountError::InvalidInvite);
    assert_eq!(accounts.register("cy", pass, Some("made-up".into())).await.unwrap_err(), AccountError::InvalidInvite);
}

#[tokio::test]
async fn registration_modes_and_password_rules() {
    let clock = ManualClock::new(START);
    let closed = accounts_on(Arc::new(LocalAccounts::in_memory()), Registration::Closed, &clock);
    assert_eq!(closed.register("ada", "correct horse", None).await.unwrap_err(), AccountError::RegistrationClosed);
    let open = accounts_on(Arc::new(LocalAccounts::in_memory()), Registration::Open, &clock);
    assert!(matches!(open.register("ada", "short", None).await, Err(AccountError::BadRequest(_))));
    assert!(matches!(open.register("no spaces", "correct horse", None).await, Err(AccountError::BadRequest(_))));
    let tokens = open.register("ada", "correct horse", None).await.unwrap();
    assert_eq!(tokens.user.as_str(), "ada");
    assert_eq!(open.login("ada", "wrong horse").await.unwrap_err(), AccountError::WrongPassword);
    assert_eq!(open.login("nobody", "correct horse").await.unwrap_err(), AccountError::WrongPassword);
    assert_eq!(open.login("ada", "correct horse").await.unwrap().user.as_str(), "ada");
    // The names others' words are shown under are nobody's.
    for reserved in super::RESERVED {
        assert!(matches!(open.register(reserved, "correct horse", None).await, Err(AccountError::Taken(_))));
    }
}

#[tokio::test]
async fn an_erased_account_is_closed_for_good() {
    let clock = ManualClock::new(START);
    let accounts = accounts_on(Arc::new(LocalAccounts::in_memory()), Registration::Open, &clock);
    accounts.register("eve", "correct horse", None).await.unwrap();
    let eve = UserId::new("eve").unwrap();
    accounts.erase(&eve).await.unwrap();
    assert!(accounts.is_closed_for_good(&eve).await.unwrap());
    assert!(matches!(
        accounts.login("eve", "correct horse").await,
        Err(AccountError::WrongPassword | AccountError::Disabled(_))
    ));
    assert!(matches!(accounts.register("eve", "correct horse", None).await, Err(AccountError::Taken(_))));
    assert!(matches!(accounts.enable("eve").await, Err(AccountError::BadRequest(_))));
    // A name with no account (its tokens were minted) is closed all the same.
    let minted = UserId::new("mo").unwrap();
    accounts.erase(&minted).await.unwrap();
    assert!(accounts.is_closed_for_good(&minted).await.unwrap());
}

#[tokio::test]
async fn a_password_change_or_a_disable_ends_earlier_tokens() {
    let clock = ManualClock::new(START);
    let accounts = accounts_on(Arc::new(LocalAccounts::in_memory()), Registration::Open, &clock);
    let first = accounts.register("ada", "correct horse", None).await.unwrap();
    assert_eq!(accounts.admit(&verified(&first)).await, Ok(()));
    // A refresh gives a working pair in the same generation.
    let refreshed = accounts.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(accounts.admit(&verified(&refreshed)).await, Ok(()));
    // The access token cannot refresh.
    assert!(matches!(accounts.refresh(&first.token).await, Err(AccountError::Token(AuthError::WrongKind { .. }))));

    let changed = accounts.change_password("ada", "correct horse", "battery staple").await.unwrap();
    assert!(matches!(accounts.admit(&verified(&first)).await, Err(Refusal::SignedOut(_))));
    assert!(matches!(accounts.refresh(&first.refresh_token).await, Err(AccountError::SignedOut(_))));
    assert_eq!(accounts.admit(&verified(&changed)).await, Ok(()));
    assert_eq!(accounts.login("ada", "correct horse").await.unwrap_err(), AccountError::WrongPassword);

    accounts.disable("ada", "spam").await.unwrap();
    assert_eq!(accounts.admit(&verified(&changed)).await, Err(Refusal::Disabled("spam".into())));
    // An operator-minted token for the name is refused too.
    let minted =
        auth::verify_token(&secret(), &auth::mint(&secret(), &UserId::new("ada").unwrap(), Duration::from_secs(60)));
    assert_eq!(accounts.admit(&minted.unwrap()).await, Err(Refusal::Disabled("spam".into())));
    assert_eq!(accounts.login("ada", "battery staple").await.unwrap_err(), AccountError::Disabled("spam".into()));
    assert_eq!(accounts.refresh(&changed.refresh_token).await.unwrap_err(), AccountError::Disabled("spam".into()));

    // Enabled again, old tokens stay dead; a new login works.
    accounts.enable("ada").await.unwrap();
    assert!(matches!(accounts.admit(&verified(&changed)).await, Err(Refusal::SignedOut(_))));
    let again = accounts.login("ada", "battery staple").await.unwrap();
    assert_eq!(accounts.admit(&verified(&again)).await, Ok(()));
    // Names without an account keep using the operator's tokens.
    let bo =
        auth::verify_token(&secret(), &auth::mint(&secret(), &UserId::new("bo").unwrap(), Duration::from_secs(60)));
    assert_eq!(accounts.admit(&bo.unwrap()).await, Ok(()));
}

#[tokio::test]
async fn login_attempts_per_account_are_limited() {
    let clock = ManualClock::new(START);
    let accounts = accounts_on(Arc::new(LocalAccounts::in_memory()), Registration::Open, &clock);
    accounts.register("ada", "correct horse", None).await.unwrap();
    for _ in 0..ATTEMPTS_PER_MINUTE {
        assert_eq!(accounts.login("ada", "guess guess").await.unwrap_err(), AccountError::WrongPassword);
    }
    assert!(matches!(accounts.login("ada", "correct horse").await, Err(AccountError::TooManyAttempts(_))));
    // Another account is not affected.
    accounts.register("bo", "correct horse", None).await.unwrap();
    assert_eq!(accounts.login("bo", "correct horse").await.unwrap().user.as_str(), "bo");
}

#[tokio::test]
async fn accounts_and_invites_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let code = {
        let accounts = accounts_on(Arc::new(LocalAccounts::open(dir.path()).unwrap()), Registration::Invite, &clock);
        let invite = accounts.invite(2, Duration::from_secs(3600)).await.unwrap();
        accounts.register("ada", "correct horse", Some(invite.code.clone())).await.unwrap();
        accounts.register("bo", "correct horse", Some(invite.code.clone())).await.unwrap();
        accounts.disable("bo", "left the club").await.unwrap();
        accounts.invite(1, Duration::from_secs(3600)).await.unwrap().code
    };
    let accounts = accounts_on(Arc::new(LocalAccounts::open(dir.path()).unwrap()), Registration::Invite, &clock);
    assert_eq!(accounts.login("ada", "correct horse").await.unwrap().user.as_str(), "ada");
    assert_eq!(
        accounts.login("bo", "correct horse").await.unwrap_err(),
        AccountError::Disabled("left the club".into())
    );
    let names: Vec<String> = accounts.list().await.unwrap().into_iter().map(|a| a.name.to_string()).collect();
    assert_eq!(names, ["ada", "bo"]);
    accounts.register("cy", "correct horse", Some(code.clone())).await.unwrap();
    assert_eq!(accounts.register("di", "correct horse", Some(code)).await.unwrap_err(), AccountError::InvalidInvite);
}

#[test]
fn the_decoy_costs_what_a_real_hash_costs() {
    // A login for a name with no account verifies against DECOY_HASH; if its
    // parameters differed from a real hash's, the answer's time would tell.
    let decoy = PasswordHash::new(DECOY_HASH).expect("the decoy parses");
    let real_hash = hash_password("correct horse battery").unwrap();
    let real = PasswordHash::new(&real_hash).unwrap();
    assert_eq!(decoy.algorithm, real.algorithm);
    assert_eq!(decoy.version, real.version);
    assert_eq!(argon2::Params::try_from(&decoy).unwrap(), argon2::Params::try_from(&real).unwrap());
    // A genuine hash, of the full cost: its own password verifies.
    assert!(argon2().verify_password(b"not anyone's password", &decoy).is_ok());
}
