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
    /// Kept for `--urls`; never printed.
    password: String,
    rules: Vec<String>,
}

/// The file `--urls` writes in the passwords' folder.
pub const URLS_FILE: &str = "urls.json";

/// How `hemostat acl` runs.
pub struct Options<'a> {
    /// New passwords.
    pub rotate: bool,
    /// ACL file lines instead of commands.
    pub acl_file: bool,
    /// Write each role's URL on this Redis to [`URLS_FILE`].
    pub urls: Option<&'a str>,
}

/// `hemostat acl ROLE...`.
pub fn users(roles: &[String], dir: Option<&Path>, options: &Options<'_>, json: bool) -> Result<(), CliError> {
    // A bad role is bad input (exit 2), like any other.
    let mut parsed: Vec<Role> =
        roles.iter().map(|r| Role::parse(r).map_err(|e| CliError::Usage(e.to_string()))).collect::<Result<_, _>>()?;
    parsed.sort();
    parsed.dedup();
    // Checked before any password is made or changed.
    let base = options.urls.map(base_url).transpose()?;
    let folder = state::folder(dir).join(PASSWORD_DIR);
    state::create(&folder)?;
    let users = parsed.into_iter().map(|role| user(&folder, role, options.rotate)).collect::<Result<Vec<_>, _>>()?;
    if let Some((scheme, rest)) = base {
        let mut urls = serde_json::Map::new();
        for u in &users {
            let url = format!("{scheme}://{}:{}@{rest}", u.name, u.password);
            urls.insert(u.role.to_string(), serde_json::Value::String(url));
        }
        let path = folder.join(URLS_FILE);
        let text =
            serde_json::to_string_pretty(&urls).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
        state::write(&path, &text, 0o600)?;
        eprintln!("each role's URL in {} (mode 0600)", path.display());
    }
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
        let lead = if options.acl_file { "user" } else { "ACL SETUSER" };
        println!("{lead} {} {}", u.name, u.rules.join(" "));
        eprintln!("{}: user {}, password in {} (mode 0600)", u.role, u.name, u.password_file.display());
    }
    Ok(())
}

/// `redis[s]://host[:port][/db]` without credentials, as (scheme, the rest).
fn base_url(url: &str) -> Result<(&str, &str), CliError> {
    // Never quotes the URL: a refused one may carry a password.
    let bad = |why: &str| CliError::Usage(format!("--urls: {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not a URL (redis://host:6379)"))?;
    if !matches!(scheme, "redis" | "rediss") {
        return Err(bad("the scheme is redis or rediss"));
    }
    if rest.contains('@') {
        return Err(bad("give the address without credentials: each role gets its own"));
    }
    if rest.is_empty() || rest.contains(char::is_whitespace) || rest.contains(',') {
        return Err(bad("one host[:port]"));
    }
    Ok((scheme, rest))
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
    Ok(User { role, name, password_file, password, rules })
}
