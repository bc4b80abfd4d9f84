//! Values that stand for a secret without being one: placeholders, slots,
//! references, paths, marks.

/// A value that stands for a secret without being one: a word that means
/// none (`null`, YAML's `~`), the value of a switch (`0`, `1`, `yes`), a
/// mark that hides one (`****`, `xxxxxxxx`, `<redacted>`), a template's or
/// a format's slot (`${DB_PASSWORD}`, `{{ .Values.token }}`,
/// `%(password)s`, `<your-token-here>`, `{password}`), an SQL statement's
/// parameter (`password_hash = $1`, `api_key = ?`, `:token`), a YAML tag
/// that says the value is none or encrypted (`!!null`, Ansible's `!vault
/// |`), or a remark in parentheses (`(printed to /var/lib/mysql/root.pw)`).
pub(super) fn placeholder(value: &str) -> bool {
    let first = value.split_whitespace().next().unwrap_or("");
    let lower = value.to_ascii_lowercase();
    let word = lower.trim_matches(|c| matches!(c, '"' | '\'' | '<' | '>' | '[' | ']' | '(' | ')'));
    // `<your-token-here>`, `{password}`, `{DB_PASSWORD}`, `{}`: a name in
    // brackets (not `{p@ss;w0rd}`, ODBC's quoting of a password).
    let slot = |open: char, close: char| {
        value.strip_prefix(open).and_then(|v| v.strip_suffix(close)).is_some_and(|name| {
            let lower = name.bytes().all(|b| !b.is_ascii_uppercase());
            let upper = name.bytes().all(|b| !b.is_ascii_lowercase());
            (lower || upper)
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b' '))
                && (open == '{' || name.bytes().any(|b| b.is_ascii_alphabetic()))
        })
    };
    let masked = value.len() >= 3 && value.chars().all(|c| matches!(c, 'x' | 'X' | '*' | '#' | '•' | '.'));
    let parameter = value == "?"
        || value.strip_prefix('$').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || matches!(value, "%s" | "%d" | "%r")
        || value.strip_prefix([':', '@']).is_some_and(|n| {
            n.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    // A tokenizer's special tokens (`</s>`, `<pad>`), `<` a name `>`.
    let tag = value
        .strip_prefix("</")
        .and_then(|v| v.strip_suffix('>'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'|'));
    // `REPLACE_ME`, `YOUR_API_KEY_HERE`: words that ask for one (not
    // `changeme`, a default password that works).
    let ask = {
        let up = value.to_ascii_uppercase();
        value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && (["REPLACE", "YOUR_", "YOUR-", "INSERT_", "ENTER_"].iter().any(|p| up.starts_with(p))
                || up.ends_with("_HERE")
                || up.ends_with("-HERE"))
    };
    let remark = first.strip_prefix('(').is_some_and(|w| {
        let w = w.trim_end_matches(')');
        !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    });
    masked
        || tag
        || ask
        || parameter
        || remark
        || slot('<', '>')
        || slot('{', '}')
        || matches!(first, "!vault" | "!!null" | "~" | "stdin")
        // Where the secret is, not the secret: openssl's `-pass file:/run/x`,
        // `env:VAR`, `fd:3`; a 1Password secret reference `op://vault/item/field`.
        || ["file:", "env:", "fd:", "op://"].iter().any(|p| value.starts_with(p))
        // Encrypted to be stored in the open: SOPS' `ENC[AES256_GCM,...`,
        // a Vault audit log's `hmac-sha256:...`; a reference to where the
        // value is: `os.environ['X']`, `process.env.X`, Ruby's `ENV['X']`,
        // Spring's `@Value("${x}")`, Grafana's `$__file{...}`, a
        // Kubernetes `secretKeyRef`.
        || ["ENC[", "hmac-sha256:", "os.environ", "os.getenv(", "process.env.", "ENV[", "ENV.fetch(", "@Value(", "$__", "secretKeyRef"]
            .iter()
            .any(|p| value.starts_with(p))
        || sealed_secret(value)
        || matches!(
        word,
        "" | "null"
            | "nil"
            | "none"
            | "undefined"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "empty"
            | "unset"
            | "sensitive"
            | "sensitive value"
            | "known"
            | "known after apply"
            | "redacted"
            | "hidden"
            | "filtered"
            | "masked"
            | "omitted"
            | "0"
            | "1"
    ) || ["${", "{{", "$(", "<%", "#{", "%("].iter().any(|p| value.starts_with(p))
        || env_reference(value)
}

/// A Bitnami SealedSecret's ciphertext (`AgB...`, hundreds of base64
/// characters): encrypted to a cluster's key, to be stored in the open.
fn sealed_secret(value: &str) -> bool {
    value.len() >= 300
        && value.starts_with("Ag")
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// `$DB_PASSWORD`, `%DB_PASSWORD%`: a reference to a variable (uppercase,
/// as environment variables are named; `$ecret1` may be a password).
pub(super) fn env_reference(value: &str) -> bool {
    let name = match (value.strip_prefix('$'), value.strip_prefix('%').and_then(|v| v.strip_suffix('%'))) {
        (Some(name), _) | (None, Some(name)) => name,
        _ => return false,
    };
    name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A file path: absolute, relative (`./`, `../`), home (`~/`) or Windows
/// (`C:\`), of path characters, with two or more parts or a file
/// extension, none of them random (`/K7MDENG/bPxRfiCY` is a password).
pub(super) fn looks_like_path(value: &str) -> bool {
    let rest = ["~/", "./", "../", "/"].iter().find_map(|p| value.strip_prefix(p)).or_else(|| {
        let b = value.as_bytes();
        (b.len() > 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\').then(|| &value[3..])
    });
    let Some(rest) = rest else { return false };
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'/' | b'\\')) {
        return false;
    }
    let parts: Vec<&str> = rest.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    let extension = parts.last().and_then(|p| p.rsplit_once('.')).is_some_and(|(stem, ext)| {
        !stem.is_empty() && (1..=5).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    (parts.len() >= 2 || extension) && !parts.iter().any(|p| random(p))
}

/// A random string rather than a name: long, and either letters, digits
/// and both cases at once, or case changing more than a name's does
/// (`PostgreSQL` once, `bPxRfiCY` three times).
fn random(s: &str) -> bool {
    let b = s.as_bytes();
    let (upper, lower, digit) =
        (b.iter().any(u8::is_ascii_uppercase), b.iter().any(u8::is_ascii_lowercase), b.iter().any(u8::is_ascii_digit));
    let humps = b.windows(2).filter(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase()).count();
    b.len() >= 8 && ((upper && lower && digit) || humps >= 2)
}

/// `*password*`: a word between stars, as wget shows a hidden password.
pub(super) fn starred(s: &str) -> bool {
    s.len() > 2 && s.starts_with('*') && s.ends_with('*')
}

/// `8080/users/a` of `http://api:8080/users/a@b.c`: a port and a path.
pub(super) fn port_and_path(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && s.as_bytes().get(digits) == Some(&b'/')
}
