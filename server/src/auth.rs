//! Users and authentication (design 13.1): who may connect, checked the
//! same way on both listeners, a per-address limit on failures, and each
//! user's ACL (design 13.2), which a reload (SIGHUP) replaces for the next
//! command of every connection.
//!
//! Invariants kept here:
//! - **No configured users: nothing is required** (the server is open, as
//!   it was); with users, a connection is unauthenticated until a
//!   password verifies.
//! - **A failure says nothing about which part was wrong**: an unknown
//!   user is verified against a dummy hash, so it costs what a wrong
//!   password costs, and both answer the same.
//! - **Failures slow their address down**: after `n` in a row, the next
//!   attempt from that IP address waits `min(100 ms × 2^(n−1), 10 s)`.
//! - **A connection is judged by its user's rules as they are now**: a
//!   reload changes what the next command may do, and a user removed or
//!   turned `off` authenticates no more and its connections are
//!   unauthenticated from their next command. A reload never turns
//!   authentication on or off (a restart does).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};
use jubilant_core::env::Env;
use jubilant_core::mutex::lock;

use crate::acl::{Acl, EVERYTHING};
use crate::config::UserConfig;

/// Addresses whose failures are remembered; the least recently failing
/// one is forgotten first.
const LIMITED_ADDRESSES_MAX: usize = 4096;
/// The first delay after a failure; each further one doubles it.
const DELAY_FIRST: Duration = Duration::from_millis(100);
/// The longest delay.
const DELAY_MAX: Duration = Duration::from_secs(10);
/// A delay looks at shutdown this often.
const DELAY_STEP: Duration = Duration::from_millis(20);
/// The user `AUTH password` (one argument) names, as in Redis.
pub const DEFAULT_USER: &str = "default";

/// Whether `phc` is an argon2id hash in PHC format (what `[[users]]`
/// `password_hash` must hold); the reason if not.
pub fn check_password_hash(phc: &str) -> Result<(), String> {
    let hash = PasswordHash::new(phc).map_err(|error| {
        format!("is not a PHC string ({error}); make one with `jubectl hash-password`")
    })?;
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return Err(format!(
            "uses {}, not argon2id; make one with `jubectl hash-password`",
            hash.algorithm
        ));
    }
    Ok(())
}

/// One configured user.
#[derive(Debug)]
pub struct User {
    /// The argon2id PHC string.
    password_hash: String,
    /// What the user may do.
    pub acl: Arc<Acl>,
}

/// The users by name.
pub type Users = BTreeMap<String, User>;

/// The configured users and what authenticating has done.
pub(crate) struct Auth {
    /// Whether users are configured (fixed at start).
    required: bool,
    /// The users now; a reload swaps the whole table.
    users: Mutex<Arc<Users>>,
    /// Verified when the user does not exist, at the same cost.
    dummy: String,
    /// Broken on purpose (tests only): every ACL skips a request's
    /// second key.
    skip_second_key: bool,
    failures: Mutex<Failures>,
    successes: AtomicU64,
    failed: AtomicU64,
    delayed: AtomicU64,
    refused: AtomicU64,
    denied: AtomicU64,
    reloads: AtomicU64,
}

#[derive(Default)]
struct Failures {
    /// Address to (failures in a row, when it last failed: a counter).
    by_address: BTreeMap<IpAddr, (u32, u64)>,
    clock: u64,
}

/// INFO's `# Auth` figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuthFacts {
    /// Users configured (0: no authentication).
    pub users: u64,
    /// Successful authentications.
    pub successes: u64,
    /// Failed ones.
    pub failures: u64,
    /// Attempts that waited because their address had failed before.
    pub delayed: u64,
    /// Requests refused because their connection had not authenticated.
    pub refused: u64,
    /// Requests refused by an ACL.
    pub denied: u64,
    /// Reloads of the users (SIGHUP) that took effect.
    pub reloads: u64,
}

/// `users` as the server holds them (each ACL parsed; `users` is
/// validated, so a rule that does not parse cannot occur, and would leave
/// its user `off`).
fn table(users: &[UserConfig], skip_second_key: bool) -> Users {
    users
        .iter()
        .map(|user| {
            let acl = Acl::parse(user.acl.as_deref().unwrap_or(EVERYTHING))
                .unwrap_or_else(|_| Acl::nothing());
            let acl = if skip_second_key {
                acl.skipping_second_key()
            } else {
                acl
            };
            let user_entry = User {
                password_hash: user.password_hash.clone(),
                acl: Arc::new(acl),
            };
            (user.name.clone(), user_entry)
        })
        .collect()
}

impl Auth {
    /// The users of `config` (already validated). `skip_second_key` is
    /// sabotage `acl-second-key-unchecked`: `false` in every real call.
    pub(crate) fn new(users: &[UserConfig], skip_second_key: bool) -> Self {
        // A fixed salt: the dummy's only job is to cost what a real
        // verification costs. Made only when there are users to verify
        // (hashing takes milliseconds, at every start).
        let dummy = if users.is_empty() {
            String::new()
        } else {
            let salt = SaltString::from_b64("ZHVtbXlzYWx0ZHVtbXlzYWx0").expect("a valid salt");
            Argon2::default()
                .hash_password(b"no such user", &salt)
                .map(|hash| hash.to_string())
                .expect("hashing with the default parameters works")
        };
        Auth {
            required: !users.is_empty(),
            users: Mutex::new(Arc::new(table(users, skip_second_key))),
            dummy,
            skip_second_key,
            failures: Mutex::new(Failures::default()),
            successes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
        }
    }

    /// Whether connections must authenticate.
    pub(crate) fn required(&self) -> bool {
        self.required
    }

    /// The users now.
    pub(crate) fn users(&self) -> Arc<Users> {
        Arc::clone(&lock(&self.users))
    }

    /// What `user` may do now; `None` once it is removed or `off` (its
    /// connections are unauthenticated from then on).
    pub(crate) fn acl(&self, user: &str) -> Option<Arc<Acl>> {
        lock(&self.users)
            .get(user)
            .map(|user| Arc::clone(&user.acl))
            .filter(|acl| acl.enabled())
    }

    /// Replaces the users (a SIGHUP's reload): every connection's next
    /// command is judged by the new rules. Refused, changing nothing, if
    /// it would turn authentication on or off.
    pub(crate) fn reload(&self, users: &[UserConfig]) -> Result<(), String> {
        if users.is_empty() == self.required {
            return Err(if self.required {
                "the new configuration has no [[users]]: a reload cannot turn authentication off (restart to do that)".to_owned()
            } else {
                "the new configuration has [[users]]: a reload cannot turn authentication on (restart to do that)".to_owned()
            });
        }
        *lock(&self.users) = Arc::new(table(users, self.skip_second_key));
        self.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Counts a request an ACL refused.
    pub(crate) fn denied(&self) {
        self.denied.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused for want of authentication.
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Checks `password` for `user`, first waiting as the address's
    /// failures say; whether it verified. The wait ends early, failing,
    /// once `stopping` is set: a shutdown does not wait for it.
    pub(crate) async fn authenticate<E: Env>(
        &self,
        env: &E,
        peer: IpAddr,
        (user, password): (&str, &[u8]),
        stopping: &AtomicBool,
    ) -> bool {
        let delay = self.delay_for(peer);
        if !delay.is_zero() {
            self.delayed.fetch_add(1, Ordering::Relaxed);
            let until = env.now_mono() + delay;
            while env.now_mono() < until {
                if stopping.load(Ordering::Acquire) {
                    return false;
                }
                let left = until.saturating_since(env.now_mono());
                env.sleep(left.min(DELAY_STEP)).await;
            }
        }
        // A user turned `off` costs and answers what an unknown one does.
        let users = self.users();
        let (hash, known) = match users.get(user) {
            Some(found) => (found.password_hash.as_str(), found.acl.enabled()),
            None => (self.dummy.as_str(), false),
        };
        let verified = PasswordHash::new(hash)
            .is_ok_and(|hash| Argon2::default().verify_password(password, &hash).is_ok())
            && known;
        let mut failures = lock(&self.failures);
        if verified {
            failures.by_address.remove(&peer);
            self.successes.fetch_add(1, Ordering::Relaxed);
        } else {
            failures.failed(peer);
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        verified
    }

    fn delay_for(&self, peer: IpAddr) -> Duration {
        let failures = lock(&self.failures);
        match failures.by_address.get(&peer) {
            Some(&(n, _)) if n > 0 => {
                let doublings = (n - 1).min(16);
                DELAY_FIRST.saturating_mul(1 << doublings).min(DELAY_MAX)
            }
            _ => Duration::ZERO,
        }
    }

    pub(crate) fn facts(&self) -> AuthFacts {
        AuthFacts {
            users: self.users().len() as u64,
            successes: self.successes.load(Ordering::Relaxed),
            failures: self.failed.load(Ordering::Relaxed),
            delayed: self.delayed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            reloads: self.reloads.load(Ordering::Relaxed),
        }
    }
}

impl Failures {
    fn failed(&mut self, peer: IpAddr) {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.by_address.entry(peer).or_insert((0, clock));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = clock;
        if self.by_address.len() > LIMITED_ADDRESSES_MAX
            && let Some(oldest) = self
                .by_address
                .iter()
                .min_by_key(|(_, (_, last))| *last)
                .map(|(address, _)| *address)
        {
            self.by_address.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phc(password: &str) -> String {
        let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0c2FsdA").expect("salt");
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .expect("hash")
            .to_string()
    }

    #[test]
    fn only_argon2id_phc_strings_are_accepted() {
        assert_eq!(check_password_hash(&phc("secret")), Ok(()));
        assert!(check_password_hash("secret").is_err(), "a plain password");
        let argon2i = phc("secret").replace("$argon2id$", "$argon2i$");
        assert!(check_password_hash(&argon2i).is_err());
    }

    #[test]
    fn failures_from_one_address_double_its_delay_up_to_the_cap() {
        let auth = Auth::new(
            &[UserConfig {
                name: "alice".to_owned(),
                password_hash: phc("secret"),
                acl: None,
            }],
            false,
        );
        let peer: IpAddr = "10.0.0.1".parse().expect("address");
        let other: IpAddr = "10.0.0.2".parse().expect("address");
        assert_eq!(auth.delay_for(peer), Duration::ZERO);
        for _ in 0..3 {
            lock(&auth.failures).failed(peer);
        }
        assert_eq!(auth.delay_for(peer), Duration::from_millis(400));
        assert_eq!(auth.delay_for(other), Duration::ZERO, "per address");
        for _ in 0..20 {
            lock(&auth.failures).failed(peer);
        }
        assert_eq!(auth.delay_for(peer), DELAY_MAX);
    }

    #[test]
    fn the_failure_table_is_bounded() {
        let auth = Auth::new(&[], false);
        for i in 0..(LIMITED_ADDRESSES_MAX as u32 + 10) {
            lock(&auth.failures).failed(IpAddr::from(std::net::Ipv4Addr::from(i)));
        }
        assert_eq!(lock(&auth.failures).by_address.len(), LIMITED_ADDRESSES_MAX);
        assert!(!auth.required());
    }
}
