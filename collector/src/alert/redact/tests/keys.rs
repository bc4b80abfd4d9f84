//! Private keys and key bodies: PEM, PuTTY and SSH2 blocks, across log lines, after log prefixes and in the CRI format; public keys and nonces left alone.

use super::*;

#[test]
fn private_key_blocks() {
    let pem = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabcdef\n-----END RSA PRIVATE KEY-----\ndone";
    assert_eq!(hides(pem, &["MIIEp", "abcdef"], 1), "key:\n[REDACTED]\ndone");
    // Cut off before its end: redacted to the end of the text.
    hides("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", &["b3BlbnNz"], 1);
    hides("-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----", &["lQOYBF"], 1);
    // A public key or certificate is not a secret.
    untouched("-----BEGIN PUBLIC KEY-----");
    untouched("-----BEGIN CERTIFICATE-----");
}

#[test]
fn private_key_blocks_across_log_lines() {
    let r = Redactor::default();
    let mut lines = r.lines();
    let out: Vec<(String, u32)> = [
        "loading key",
        "-----BEGIN EC PRIVATE KEY-----",
        "MHcCAQEEIBkg",
        "AwEHoUQDQgAE",
        "-----END EC PRIVATE KEY----- loaded password=x1",
        "next",
    ]
    .iter()
    .map(|l| lines.redact(l))
    .collect();
    let text: Vec<&str> = out.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        text,
        ["loading key", "[REDACTED]", "[REDACTED]", "[REDACTED]", "[REDACTED] loaded password=[REDACTED]", "next"]
    );
    assert_eq!(out.iter().map(|(_, n)| n).sum::<u32>(), 2);
}

#[test]
fn key_bodies_whose_start_the_tail_cut_off() {
    let r = Redactor::default();
    let mut lines = r.lines();
    let body = "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB";
    assert_eq!(lines.redact(body), (MARK.to_owned(), 1));
    assert_eq!(lines.redact("-----END RSA PRIVATE KEY-----").1, 0);
    // Ordinary lines of letters, or short ones, stay.
    assert_eq!(lines.redact("abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz").1, 0);
    assert_eq!(lines.redact("deadbeef").1, 0);
}

#[test]
fn gcp_service_account_json() {
    let key = format!("-----BEGIN PRIVATE KEY-----\\n{}\\n{}\\n-----END PRIVATE KEY-----\\n", fake(64), fake(40));
    let json = format!(
        r#"{{"type": "service_account", "project_id": "p", "private_key_id": "{}", "private_key": "{key}", "client_email": "sa@p.iam.gserviceaccount.com"}}"#,
        hex(40)
    );
    let out = hidden(&json, &fake(64));
    assert!(!out.contains(&fake(40)), "{out}");
    assert!(out.contains("sa@p.iam.gserviceaccount.com") && out.contains("service_account"), "{out}");
    // Printed with spaces for newlines.
    hidden(&format!("key: -----BEGIN RSA PRIVATE KEY----- {} -----END RSA PRIVATE KEY-----", fake(64)), &fake(64));
}

#[test]
fn key_bodies_after_a_log_prefix() {
    let r = Redactor::default();
    for line in [format!("2024-01-01T00:00:00Z {}", fake(64)), format!("key | {}", fake(70))] {
        let (out, n) = r.lines().redact(&line);
        assert!(!out.contains(&fake(64)) && n == 1, "{out}");
    }
    // A certificate's body is no secret, nor are hashes and ids.
    let mut lines = r.lines();
    for line in ["-----BEGIN CERTIFICATE-----", &fake(64), &fake(64), "Zx8Qm2==", "-----END CERTIFICATE-----"] {
        assert_eq!(lines.redact(line), (line.to_owned(), 0));
    }
    lines_untouched(&[
        "commit 3f2a9b1c4d5e6f708192a3b4c5d6e7f8091a2b3c",
        "3f2a9b1c4d5e6f708192a3b4c5d6e7f8091a2b3c",
        &hex(64),
        &format!("Status: Downloaded newer image; Digest: sha256:{}", hex(64)),
        &format!("{} app-web-1 Up 3 minutes", hex(12)),
        "request 123e4567-e89b-12d3-a456-426614174000 done in 12 ms",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl deploy@ci",
        "-----BEGIN PUBLIC KEY-----",
        "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8 (ED25519)",
        "client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=",
        "SSH_KEY=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ci",
        "integrity sha512-Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyAZx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyAZx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1==",
        "h1:Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyAZx8Qm2Lp5=",
    ]);
}

#[test]
fn key_bodies_after_a_log_prefix_at_any_width() {
    let r = Redactor::default();
    for line in [
        format!("app-1  | {}", fake(76)),
        format!("2026-01-02T03:04:05.678901234Z {}", fake(52)),
        format!("2026-01-02T03:04:05Z worker.1 | {}==", fake(58)),
    ] {
        let (out, n) = r.lines().redact(&line);
        assert!(!out.contains(&fake(40)) && n == 1, "{line} -> {out}");
    }
    // A header's base64 value is not a key body.
    lines_untouched(&[&format!("x-amz-id-2: {}", fake(76)), &format!("ETag: {}", fake(44))]);
}

#[test]
fn key_bodies_in_the_cri_log_format() {
    let r = Redactor::default();
    for line in [
        format!("2026-01-02T03:04:05.123456789Z stdout F {}", fake(64)),
        format!("2026-01-02T03:04:05.123456789Z stderr F {}==", fake(30)),
        format!("{}=", fake(27)),
    ] {
        let (out, n) = r.lines().redact(&line);
        assert!(!out.contains(&fake(27)) && n == 1, "{line} -> {out}");
    }
    lines_untouched(&[
        "2026-01-02T03:04:05.123456789Z stdout F Started server on :8080",
        "2026-01-02T03:04:05.123456789Z stdout P partial line",
        "dGVzdA==",
        "abcdefghijklmnopqrstuvwx==",
    ]);
}

#[test]
fn nonces_and_public_keys_named_like_keys() {
    lines_untouched(&[
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        "added authorized key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@bastion",
        "host key: ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY=",
    ]);
}

#[test]
fn putty_and_ssh2_private_keys() {
    let ppk = format!(
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: ops\nPublic-Lines: 2\n{}\n{}\nPrivate-Lines: 2\n{}\n{}\nPrivate-MAC: {}\nok",
        fake(64),
        fake(12),
        lower(64),
        lower(10),
        hex(64)
    );
    let (out, n) = redact(&ppk);
    assert!(out.contains(&fake(64)) && out.contains(&fake(12)), "the public lines stay: {out}");
    assert!(!out.contains(&lower(64)) && !out.contains(&lower(10)), "{out}");
    assert!(out.ends_with("\nok"), "{out}");
    assert_eq!(n, 1);
    // A log's lines one by one, after a compose prefix or not.
    let r = Redactor::default();
    let mut lines = r.lines();
    let out: Vec<String> = ppk.lines().map(|l| lines.redact(l).0).collect();
    assert_eq!(out[4], fake(64));
    assert_eq!(out[7], MARK);
    assert_eq!(out[8], MARK);
    assert_eq!(out[10], "ok");
    // ssh.com's format.
    let ssh2 = format!(
        "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nComment: \"ops\"\n{}\n---- END SSH2 ENCRYPTED PRIVATE KEY ----\nok",
        fake(70)
    );
    assert_eq!(hides(&ssh2, &[&fake(70)], 1), "[REDACTED]\nok");
    untouched("---- BEGIN SSH2 PUBLIC KEY ----");
}
