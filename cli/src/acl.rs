//! `hemostat acl`: the Redis ACL users of HemoStat's roles (see
//! [`hemostat_protocol::acl`]), each with a password of its own.
//!
//! Prints one `ACL SETUSER` line per role (`--acl-file`: one `user` line, as
//! an ACL file holds them), with the password's SHA-256 only: the output
//! can be piped to `redis-cli` (on a cluster, to every node) or kept. The
//! passwords themselves go to `<state folder>/redis/<user>.password` (mode
//! 0600), each component's `REDIS_URL` takes its own; an existing one is
//! kept unless `--rotate`, so adding a host's collector later changes no
//! other user.

use std::path::{Path, PathBuf};

use hemostat_protocol::acl::{self, Role};

use crate::{error::CliError, state};

/// The passwords' folder inside the state folder.
pub const PASSWORD_DIR: &str = "redis";

/// One role's user, as printed.
struct User {
    role: Role,
    name: String,
    password_file: PathBuf,
    rules: Vec<String>,
}

/// `hemostat acl ROLE...`.
pub fn users(roles: &[String], dir: Option<&Path>, rotate: bool, acl_file: bool, json: bool) -> Result<(), CliError> {
    let mut parsed: Vec<Role> = roles.iter().map(|r| Role::parse(r)).collect::<Result<_, _>>()?;
    parsed.sort();
    parsed.dedup();
    let folder = state::folder(dir).join(PASSWORD_DIR);
    state::create(&folder)?;
    let users = parsed.into_iter().map(|role| user(&folder, role, rotate)).collect::<Result<Vec<_>, _>>()?;
    if json {
        let shown: Vec<_> = users
            .iter()
            .map(|u| {
                serde_json::json!({
                    "role": u.role.to_string(), "user": u.name, "password_file": u.password_file, "rules": u.rules,
                })
            })
            .collect();
        crate::show::json(&serde_json::json!({ "users": shown }));
        return Ok(());
    }
    for u in &users {
        let lead = if acl_file { "user" } else { "ACL SETUSER" };
        println!("{lead} {} {}", u.name, u.rules.join(" "));
        eprintln!("{}: user {}, password in {} (mode 0600)", u.role, u.name, u.password_file.display());
    }
    Ok(())
}

/// The role's user, with its password read from its file or made.
fn user(folder: &Path, role: Role, rotate: bool) -> Result<User, CliError> {
    let name = role.user();
    let password_file = folder.join(format!("{name}.password"));
    let password = if password_file.exists() && !rotate {
        state::read_private(&password_file, "Redis password file")?.expose().to_owned()
    } else {
        let password = acl::generate_password()?;
        state::write(&password_file, &password, 0o600)?;
        password
    };
    let rules = role.rules(&acl::password_sha256(&password));
    Ok(User { role, name, password_file, rules })
}
