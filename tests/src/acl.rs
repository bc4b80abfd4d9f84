//! Redis ACL users for tests: one per role ([`hemostat_protocol::acl`]),
//! made on every node of the test's Redis, single node or cluster (ACL
//! users are per node), and the `REDIS_URL` that logs in as each.

use std::collections::BTreeMap;

use hemostat_protocol::acl::{Role, generate_password, password_sha256};

/// The users made, by role.
#[derive(Debug, Clone, Default)]
pub struct Users {
    urls: BTreeMap<Role, String>,
}

impl Users {
    /// `REDIS_URL` for `role` (a cluster's seed list, each seed with the
    /// user's credentials).
    pub fn url(&self, role: &Role) -> &str {
        self.urls.get(role).unwrap_or_else(|| panic!("no Redis user was made for {role}"))
    }
}

/// Makes a user for each of `roles` on every node of `redis_url` (one
/// `redis://127.0.0.1:PORT` or a seed list of every node, as the harness's
/// Redis servers give), logging in as the default user.
pub async fn create_users(redis_url: &str, roles: &[Role]) -> Users {
    let nodes: Vec<&str> = redis_url.split(',').map(str::trim).collect();
    let mut urls = BTreeMap::new();
    for role in roles {
        let password = generate_password().expect("random password");
        let rules = role.rules(&password_sha256(&password));
        for node in &nodes {
            let client = redis::Client::open(*node).unwrap_or_else(|e| panic!("{node}: {e}"));
            let mut conn = client.get_multiplexed_async_connection().await.unwrap_or_else(|e| panic!("{node}: {e}"));
            let mut cmd = redis::cmd("ACL");
            cmd.arg("SETUSER").arg(role.user()).arg(&rules);
            let () = cmd.query_async(&mut conn).await.unwrap_or_else(|e| panic!("ACL SETUSER {}: {e}", role.user()));
        }
        let credentials = format!("{}:{password}@", role.user());
        let url = nodes.iter().map(|n| n.replacen("://", &format!("://{credentials}"), 1)).collect::<Vec<_>>();
        urls.insert(role.clone(), url.join(","));
    }
    Users { urls }
}
