//! Blocks: whole servers by the administrator (`instance_blocks`) and remote accounts or
//! servers by a user (`user_blocks`).

use std::collections::HashSet;

use diesel::{dsl::exists, prelude::*};

use super::{
    AnyConnection,
    posts::Post,
    remote_actors::RemoteActor,
    schema::{instance_blocks, posts, remote_actors, user_blocks, users},
    users::{User, UserId},
};
use crate::error::Error;

/// How hard an administrator blocks a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceBlockSeverity {
    /// Nothing from it is accepted.
    Reject,
    /// Its accounts may not follow local users; other activities are accepted.
    FollowsOnly,
}

impl InstanceBlockSeverity {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::FollowsOnly => "follows_only",
        }
    }

    /// Reads the stored spelling; anything unknown is the strict side.
    pub fn parse(value: &str) -> Self {
        match value {
            "follows_only" => Self::FollowsOnly,
            _ => Self::Reject,
        }
    }
}

/// Lowercase punycode, no trailing dot, no port: the form domains are stored and matched
/// in (the `url` crate gives hosts of parsed URLs in this form already).
pub fn normalize_domain(domain: &str) -> String {
    let domain = domain.trim().to_lowercase();
    let name = match domain.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
        _ => domain,
    };
    let name = name.trim_end_matches('.');
    match url::Host::parse(name) {
        Ok(url::Host::Domain(ascii)) => ascii,
        _ => name.to_owned(),
    }
}

/// `host`, then each parent domain (`a.b.example` → `b.example` → `example`), since a
/// block of a server covers its subdomains, as on Mastodon.
pub fn domain_and_parents(host: &str) -> Vec<String> {
    let host = normalize_domain(host);
    let mut domains = vec![host.clone()];
    let mut rest = host.as_str();
    while let Some((_, parent)) = rest.split_once('.') {
        domains.push(parent.to_owned());
        rest = parent;
    }
    domains
}

/// A stored server block.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = instance_blocks)]
pub struct InstanceBlock {
    /// The blocked domain (covers its subdomains).
    pub domain: String,
    /// Stored severity; see [`InstanceBlock::severity`].
    #[diesel(column_name = severity)]
    pub severity_name: String,
    /// The operator's comment.
    pub reason: Option<String>,
    /// When it was first blocked (ms).
    pub created_at: i64,
}

impl InstanceBlock {
    /// How hard it is blocked.
    pub fn severity(&self) -> InstanceBlockSeverity {
        InstanceBlockSeverity::parse(&self.severity_name)
    }
}

/// Every server block, by domain.
pub fn list_instance_blocks(conn: &mut AnyConnection) -> Result<Vec<InstanceBlock>, Error> {
    Ok(instance_blocks::table
        .order(instance_blocks::domain.asc())
        .select(InstanceBlock::as_select())
        .load(conn)?)
}

/// The block of exactly `domain` (not of a parent domain).
pub fn find_instance_block(
    conn: &mut AnyConnection,
    domain: &str,
) -> Result<Option<InstanceBlock>, Error> {
    Ok(instance_blocks::table
        .find(normalize_domain(domain))
        .select(InstanceBlock::as_select())
        .first(conn)
        .optional()?)
}

/// Whether `host` is `domain` or one of its subdomains (any port).
pub fn domain_covers(domain: &str, host: &str) -> bool {
    domain_and_parents(host).iter().any(|d| d == domain)
}

/// Whether `host` (or a parent domain of it) is one of `domains`, which are stored blocks
/// in their normalized form: the same rule as [`instance_block_for`] and [`user_blocks`],
/// against a set loaded once.
pub fn any_covers(domains: &HashSet<String>, host: &str) -> bool {
    !domains.is_empty() && domain_and_parents(host).iter().any(|d| domains.contains(d))
}

/// Every domain blocked with severity `reject` (each covers its subdomains).
pub fn rejected_domains(conn: &mut AnyConnection) -> Result<HashSet<String>, Error> {
    let rows: Vec<(String, String)> = instance_blocks::table
        .select((instance_blocks::domain, instance_blocks::severity))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(_, severity)| {
            InstanceBlockSeverity::parse(severity) == InstanceBlockSeverity::Reject
        })
        .map(|(domain, _)| domain)
        .collect())
}

/// Blocks (or re-blocks with a new severity) a server.
pub fn block_instance(
    conn: &mut AnyConnection,
    domain: &str,
    severity: InstanceBlockSeverity,
    reason: Option<&str>,
    now: i64,
) -> Result<(), Error> {
    use diesel::upsert::excluded;
    let values = (
        instance_blocks::domain.eq(normalize_domain(domain)),
        instance_blocks::severity.eq(severity.as_str()),
        instance_blocks::reason.eq(reason),
        instance_blocks::created_at.eq(now),
    );
    with_backend!(conn, c => diesel::insert_into(instance_blocks::table)
        .values(values)
        .on_conflict(instance_blocks::domain)
        .do_update()
        .set((
            instance_blocks::severity.eq(excluded(instance_blocks::severity)),
            instance_blocks::reason.eq(excluded(instance_blocks::reason)),
        ))
        .execute(c))?;
    Ok(())
}

/// Lifts a server block; returns whether there was one.
pub fn unblock_instance(conn: &mut AnyConnection, domain: &str) -> Result<bool, Error> {
    let removed =
        diesel::delete(instance_blocks::table.find(normalize_domain(domain))).execute(conn)?;
    Ok(removed > 0)
}

/// The strictest block covering `host` (or one of its parent domains).
pub fn instance_block_for(
    conn: &mut AnyConnection,
    host: &str,
) -> Result<Option<InstanceBlockSeverity>, Error> {
    let severities: Vec<String> = instance_blocks::table
        .filter(instance_blocks::domain.eq_any(domain_and_parents(host)))
        .select(instance_blocks::severity)
        .load(conn)?;
    let parsed: Vec<InstanceBlockSeverity> = severities
        .iter()
        .map(|s| InstanceBlockSeverity::parse(s))
        .collect();
    Ok(if parsed.contains(&InstanceBlockSeverity::Reject) {
        Some(InstanceBlockSeverity::Reject)
    } else {
        parsed.first().copied()
    })
}

/// The strictest block of `host` from two flags: a block other than follows-only
/// (anything unknown counts as a full block, as in [`InstanceBlockSeverity::parse`]), and
/// a follows-only block.
fn strictest(reject: bool, follows_only: bool) -> Option<InstanceBlockSeverity> {
    if reject {
        Some(InstanceBlockSeverity::Reject)
    } else if follows_only {
        Some(InstanceBlockSeverity::FollowsOnly)
    } else {
        None
    }
}

/// The actor holding the key `key_id`, with the strictest block covering `host` (as
/// [`instance_block_for`]), in one query; `None` when no actor holds that key.
pub fn key_owner_with_block(
    conn: &mut AnyConnection,
    key_id: &str,
    host: &str,
) -> Result<Option<(RemoteActor, Option<InstanceBlockSeverity>)>, Error> {
    let domains = domain_and_parents(host);
    let covering = instance_blocks::table.filter(instance_blocks::domain.eq_any(&domains));
    let follows_only = InstanceBlockSeverity::FollowsOnly.as_str();
    let row: Option<(RemoteActor, bool, bool)> = remote_actors::table
        .filter(remote_actors::public_key_id.eq(key_id))
        .select((
            RemoteActor::as_select(),
            exists(
                covering
                    .clone()
                    .filter(instance_blocks::severity.ne(follows_only)),
            ),
            exists(covering.filter(instance_blocks::severity.eq(follows_only))),
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(actor, reject, follows_only)| (actor, strictest(reject, follows_only))))
}

/// The user `platform_user_id`, and whether they block the actor `actor_id` or its server
/// `host` (as [`user_blocks`]), in one query.
pub fn user_with_block(
    conn: &mut AnyConnection,
    platform_user_id: &str,
    actor_id: &str,
    host: &str,
) -> Result<Option<(User, bool)>, Error> {
    let domains = domain_and_parents(host);
    let by_actor = user_blocks::target_kind
        .eq("actor")
        .and(user_blocks::target.eq(actor_id));
    let by_domain = user_blocks::target_kind
        .eq("domain")
        .and(user_blocks::target.eq_any(&domains));
    // At most one row per user: any matching block will do.
    let row: Option<(User, Option<i64>)> = users::table
        .left_join(
            user_blocks::table.on(user_blocks::user_id
                .eq(users::id)
                .and(by_actor.or(by_domain))),
        )
        .filter(users::platform_user_id.eq(platform_user_id))
        .select((User::as_select(), user_blocks::id.nullable()))
        .first(conn)
        .optional()?;
    Ok(row.map(|(user, block)| (user, block.is_some())))
}

/// The post `platform_post_id` with its author, and whether the author blocks the actor
/// `actor_id` or its server `host` (as [`user_blocks`]), in one query.
pub fn post_with_block(
    conn: &mut AnyConnection,
    platform_post_id: &str,
    actor_id: &str,
    host: &str,
) -> Result<Option<(Post, User, bool)>, Error> {
    let domains = domain_and_parents(host);
    let by_actor = user_blocks::target_kind
        .eq("actor")
        .and(user_blocks::target.eq(actor_id));
    let by_domain = user_blocks::target_kind
        .eq("domain")
        .and(user_blocks::target.eq_any(&domains));
    let row: Option<(Post, User, Option<i64>)> = posts::table
        .inner_join(users::table)
        .left_join(
            user_blocks::table.on(user_blocks::user_id
                .eq(users::id)
                .and(by_actor.or(by_domain))),
        )
        .filter(posts::platform_post_id.eq(platform_post_id))
        .select((
            Post::as_select(),
            User::as_select(),
            user_blocks::id.nullable(),
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(post, author, block)| (post, author, block.is_some())))
}

/// Whether `user` blocks the actor `actor_id` or its server `host` (or a parent domain).
pub fn user_blocks(
    conn: &mut AnyConnection,
    user: UserId,
    actor_id: &str,
    host: &str,
) -> Result<bool, Error> {
    let by_actor = user_blocks::target_kind
        .eq("actor")
        .and(user_blocks::target.eq(actor_id));
    let by_domain = user_blocks::target_kind
        .eq("domain")
        .and(user_blocks::target.eq_any(domain_and_parents(host)));
    let count: i64 = user_blocks::table
        .filter(user_blocks::user_id.eq(user.0))
        .filter(by_actor.or(by_domain))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalized_and_cover_their_subdomains() {
        assert_eq!(normalize_domain("Evil.Example.:8443"), "evil.example");
        assert_eq!(normalize_domain("Bücher.Example"), "xn--bcher-kva.example");
        assert!(domain_covers("evil.example", "a.evil.example:8443"));
        assert!(!domain_covers("evil.example", "notevil.example"));
        assert_eq!(
            domain_and_parents("a.evil.example:80"),
            vec!["a.evil.example", "evil.example", "example"]
        );
    }

    #[test]
    fn a_set_of_blocked_domains_covers_their_subdomains_in_any_spelling() {
        let blocked = HashSet::from([
            "evil.example".to_owned(),
            "xn--bcher-kva.example".to_owned(),
        ]);
        for host in [
            "evil.example",
            "A.Evil.Example.:8443",
            "bücher.example",
            "m.xn--bcher-kva.example",
        ] {
            assert!(any_covers(&blocked, host), "{host}");
        }
        for host in ["notevil.example", "evil.example.org", "example", ""] {
            assert!(!any_covers(&blocked, host), "{host}");
        }
        assert!(!any_covers(&HashSet::new(), "evil.example"));
    }
}
