//! `ACL`'s read-only subcommands (design 13.2): who the connection is,
//! and the users and rules the configuration defines. Users change only by
//! editing the configuration and a reload (SIGHUP), so nothing here
//! writes.
//!
//! Invariant kept here: **no answer shows a password hash**, not even to
//! an administrator (Redis shows SHA-256 digests; an argon2 PHC string
//! is a target for offline guessing).

use super::command::AclCommand;
use super::reply::Reply;
use crate::acl::{Acl, EVERYTHING};
use crate::auth::{Auth, DEFAULT_USER};
use crate::commands::{COMMANDS, Category};

/// The answer to `command` on a connection authenticated as `user`.
pub(super) fn answer(auth: &Auth, user: Option<&str>, command: &AclCommand) -> Reply {
    let users = auth.users();
    // No users configured: everyone is Redis's `default`, who may do
    // everything.
    let open = Acl::parse(EVERYTHING).unwrap_or_else(|_| Acl::nothing());
    let listed: Vec<(&str, &Acl)> = if auth.required() {
        users
            .iter()
            .map(|(name, user)| (name.as_str(), user.acl.as_ref()))
            .collect()
    } else {
        vec![(DEFAULT_USER, &open)]
    };
    match command {
        AclCommand::WhoAmI => Reply::Bulk(user.unwrap_or(DEFAULT_USER).as_bytes().to_vec()),
        AclCommand::Users => {
            Reply::Array(listed.iter().map(|(name, _)| Reply::text(*name)).collect())
        }
        AclCommand::List => Reply::Array(
            listed
                .iter()
                .map(|(name, acl)| Reply::text(format!("user {name} {}", acl.describe())))
                .collect(),
        ),
        AclCommand::GetUser(name) => {
            let Some((_, acl)) = listed.iter().find(|(listed, _)| listed.as_bytes() == name) else {
                return Reply::Nil;
            };
            let flags = vec![Reply::text(if acl.enabled() { "on" } else { "off" })];
            Reply::Map(vec![
                (Reply::text("flags"), Reply::Array(flags)),
                (Reply::text("passwords"), Reply::Array(Vec::new())),
                (Reply::text("commands"), Reply::text(acl.command_rules())),
                (Reply::text("keys"), Reply::text(acl.key_rules())),
                (Reply::text("channels"), Reply::text("")),
                (Reply::text("selectors"), Reply::Array(Vec::new())),
            ])
        }
        AclCommand::Cat(None) => Reply::Array(
            Category::ALL
                .iter()
                .map(|category| Reply::text(category.name()))
                .collect(),
        ),
        AclCommand::Cat(Some(name)) => {
            let Some(category) = Category::named(&String::from_utf8_lossy(name)) else {
                return Reply::err(format!(
                    "Unknown category '{}'",
                    String::from_utf8_lossy(name)
                ));
            };
            Reply::Array(
                COMMANDS
                    .iter()
                    .filter(|spec| spec.categories.contains(&category))
                    .map(|spec| Reply::text(spec.name))
                    .collect(),
            )
        }
    }
}
