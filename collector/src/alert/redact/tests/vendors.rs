//! Vendors' token formats (prefixes, lengths, DSNs, registry credentials).

use super::*;

#[test]
fn key_formats() {
    hides("using key AKIAIOSFODNN7EXAMPLE for s3", &["AKIAIOSFODNN7EXAMPLE"], 1);
    hides("temp creds ASIAXXXXXXXXXXXXXXXX", &["ASIAXXXXXXXXXXXXXXXX"], 1);
    hides(
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        &["wJalrXUtnFEMI", "bPxRfiCYEXAMPLEKEY"],
        1,
    );
    hides(r#"{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#, &["wJalrXUtnFEMI"], 1);
    hides("openai key sk-proj-AbCdEf0123456789AbCdEf0123", &["AbCdEf0123456789"], 1);
    hides("ANTHROPIC sk-ant-api03-AbCdEf0123456789_xyz-AbCdEf", &["api03-AbCdEf", "xyz"], 1);
    hides("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", &["4eC39HqLyjWDarjtT1zdp7dc"], 1);
    hides("push with ghp_abcdefghijklmnopqrstuvwxyz0123456789AB", &["ghp_abc"], 1);
    hides("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", &["11ABCDEFG"], 1);
    hides("glpat-abcdefghij0123456789", &["abcdefghij0123456789"], 1);
    hides("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKl", &["xoxb-1234", "AbCdEfGhIjKl"], 1);
    hides("xoxp-1234567890-abc", &["xoxp-1234567890"], 1);
    hides("posting to https://hooks.slack.com/services/T000/B000/XXXXXXXX", &["T000/B000/XXXXXXXX"], 1);
    hides("maps AIzaSyA-1234567890abcdefghijklmnopqrstu", &["AIzaSyA"], 1);
    hides(
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U ok",
        &["eyJhbGci", "dozjgN"],
        1,
    );
}

#[test]
fn docker_registry_credentials() {
    let auth = "ZGVwbG95OnJlZy1zM2NyZXQ=";
    for line in [
        format!(r#"{{"auths":{{"registry.example.com":{{"auth":"{auth}"}}}}}}"#),
        format!(r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}", "email": "a@b.c"}}}}}}"#),
        format!(r#"{{\"auths\":{{\"r\":{{\"auth\":\"{auth}\"}}}}}}"#),
    ] {
        hidden(&line, auth);
    }
    hidden(".dockerconfigjson: eyJhdXRocyI6eyJyZWdpc3RyeSI6eyJhdXRoIjoiWkdWd2JHOTUifX19", "eyJhdXRocyI6eyJy");
    hidden(&format!("login with dckr_pat_{}", fake(27)), &fake(27));
    hidden("docker login -u bot --password reg-s3cret", "reg-s3cret");
    lines_untouched(&[
        "Login Succeeded",
        "\"auth\": \"required\"",
        "WARNING! Using --password via the CLI is insecure.",
    ]);
}

#[test]
fn vendor_token_formats() {
    let tokens = [
        format!("AKIA{}", "ZX8QM2LP5RT7WN4K"),
        format!("ASIA{}", "ZX8QM2LP5RT7WN4K"),
        format!("ghp_{}", fake(36)),
        format!("gho_{}", fake(36)),
        format!("ghu_{}", fake(36)),
        format!("ghs_{}", fake(36)),
        format!("ghr_{}", fake(36)),
        format!("github_pat_{}_{}", fake(22), fake(59)),
        format!("glpat-{}", fake(20)),
        format!("xoxb-123456789012-1234567890123-{}", fake(24)),
        format!("xoxp-123456789012-123456789012-1234567890123-{}", hex(32)),
        format!("xoxa-2-{}", fake(20)),
        format!("xoxs-{}", fake(20)),
        format!("xoxr-{}", fake(20)),
        format!("xoxo-{}", fake(20)),
        format!("xapp-1-A0123456789-1234567890123-{}", hex(64)),
        format!("sk_live_{}", fake(24)),
        format!("rk_live_{}", fake(24)),
        format!("sk_test_{}", fake(24)),
        format!("whsec_{}", fake(32)),
        format!("sk-{}", fake(48)),
        format!("sk-proj-{}", fake(80)),
        format!("sk-ant-api03-{}-{}AA", fake(80), fake(10)),
        format!("AIza{}", fake(35)),
        format!("GOCSPX-{}", fake(28)),
        format!("SG.{}.{}", fake(22), fake(43)),
        format!("npm_{}", fake(36)),
        format!("pypi-AgEIcHlwaS5vcmc{}", fake(60)),
        format!("hvs.{}", fake(24)),
        format!("hvb.{}", fake(90)),
        format!("dop_v1_{}", hex(64)),
        format!("shpat_{}", hex(32)),
        format!("shpss_{}", hex(32)),
        format!("hf_{}", fake(34)),
        format!("SK{}", hex(32)),
        format!("key-{}", hex(32)),
        format!("ATATT3{}", fake(180)),
        format!("dckr_pat_{}", fake(27)),
        format!("HRKU-{}", fake(60)),
        format!("glsa_{}_{}", fake(32), hex(8)),
        format!("AGE-SECRET-KEY-1{}", "ZX8QM2LP5RT7WN4KD9HS3VB6GC1JF0TYAZX8QM2LP5RT7WN4KD9HS3VB6GC"),
        format!("ya29.{}", fake(60)),
        format!("IQoJb3JpZ2luX2Vj{}", fake(200)),
        format!("{}.atlasv1.{}", fake(14), fake(67)),
        format!("MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.{}", fake(38)),
        format!("abc8Q~{}", fake(34)),
        format!("{}-us21", hex(32)),
        format!("sq0atp-{}", fake(22)),
        format!("PMAK-{}-{}", hex(24), hex(34)),
        format!("lin_api_{}", fake(40)),
        format!("sntrys_{}", fake(60)),
        format!("dp.pt.{}", fake(43)),
        format!("sbp_{}", hex(40)),
        format!("pul-{}", hex(40)),
        format!("ATBB{}", fake(32)),
        format!("AAAA{}:{}", fake(7), fake(140)),
        format!("LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFb3dJQkFBS0NBUUVB{}", fake(40)),
        format!("LS0tLS1CRUdJTiBPUEVOU1NIIFBSSVZBVEUgS0VZLS0tLS0K{}", fake(40)),
    ];
    for token in &tokens {
        for line in [format!("using {token} for the api"), format!("\"{token}\""), format!("config={{client:{token}}}")]
        {
            hidden(&line, token);
        }
    }
    // Secrets given by their context.
    let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    hidden(&format!("aws_secret_access_key = {aws}"), aws);
    hidden(&format!(r#""SecretAccessKey": "{aws}""#), aws);
    hidden(&format!("AKIAZX8QM2LP5RT7WN4K,{aws}"), aws);
    hidden(&format!("AWS_SESSION_TOKEN={}", fake(300)), &fake(300));
    hidden(&format!("https://hooks.slack.com/services/T0123ABCD/B0123ABCD/{}", fake(24)), &fake(24));
    hidden(&format!("POST https://discord.com/api/webhooks/123456789012345678/{}", fake(68)), &fake(68));
    let telegram = format!("123456789:AA{}", fake(33));
    hidden(&format!("POST https://api.telegram.org/bot{telegram}/sendMessage"), &telegram);
    hidden(&format!("TELEGRAM_BOT_TOKEN={telegram}"), &telegram);
    hidden(&format!("mailgun key {}-{}-{}", hex(32), hex(8), hex(8)), &hex(32));
    hidden("DD_API_KEY=3f9a0c7e51b2d8643f9a0c7e51b2d864", "3f9a0c7e51b2d864");
    hidden("AZURE_CLIENT_SECRET=abc8Q~Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyA", "abc8Q~Zx8Qm");
    lines_untouched(&[
        "sk-learn is installed",
        "AKIA is a prefix",
        "task-0123456789abcdefghij0123 finished",
        "hf_transfer enabled",
        "npm_config_cache=/root/.npm",
        "key-value store ready",
        "SKU 12 restocked",
        "xoxo hugs",
    ]);
}

#[test]
fn more_vendor_formats() {
    for token in [
        format!("AC{}", hex(32)),
        format!("eyJ2ZXIiOiI4LjE0LjAiLCJhZHIiOlsiMTcyLjE4LjAuMjo5MjAwIl0s{}", fake(60)),
        format!("gsk_{}", fake(52)),
        format!("r8_{}", fake(37)),
        format!("pplx-{}", fake(48)),
        format!("xai-{}", fake(80)),
        format!("pcsk_{}_{}", fake(5), fake(60)),
        format!("tskey-auth-{}-{}", fake(12), fake(30)),
        format!("pscale_tkn_{}", fake(43)),
        format!("ntn_{}", fake(46)),
        format!("pat{}.{}", fake(14), hex(64)),
        format!("figd_{}", fake(40)),
        format!("CFPAT-{}", fake(43)),
        format!("bkua_{}", hex(40)),
        format!("CCIPAT_{}_{}", fake(22), hex(40)),
        format!("nfp_{}", fake(36)),
        format!("fo1_{}", fake(43)),
        format!("sb_secret_{}", fake(31)),
        format!("dapi{}", hex(32)),
        format!("xkeysib-{}-{}", hex(64), fake(16)),
        format!("rubygems_{}", hex(48)),
        format!("EAA{}", fake(120)),
    ] {
        hidden(&format!("token {token} loaded"), &token);
        hidden(&format!("{{\"k\":\"{token}\"}}"), &token);
    }
    let id = hex(40);
    hidden(&format!(r#"  "private_key_id": "{id}","#), &id);
    hidden(&format!(r#"{{\"private_key_id\":\"{id}\"}}"#), &id);
    hidden(&format!("aws_secret_access_key     {}", fake(40)), &fake(40));
    lines_untouched(&[
        "ACCEPTED 12 requests",
        &format!("AC{}", "0".repeat(31)),
        "patch applied to 3 files",
        "r8_ is a prefix",
        "dapi client ready",
        &format!("{{\"client_id\": \"{}\"}}", hex(21)),
    ]);
}

#[test]
fn an_aws_secret_shortly_after_its_key_id() {
    let secret = fake(40);
    for line in [
        // The Go SDK's static credentials provider, in an error.
        format!("using static credentials provider (AKID \"AKIAZX8QM2LP5RT7WN4K\", secret \"{secret}\"): denied"),
        format!("| AKIAZX8QM2LP5RT7WN4K | {secret} | active |"),
        format!("access_key_id=AKIAZX8QM2LP5RT7WN4K region=eu-west-1 key {secret}"),
    ] {
        let out = hidden(&line, &secret);
        assert!(!out.contains("AKIAZX8QM2LP5RT7WN4K"), "{out}");
    }
    // A commit (40 hexadecimal digits) near a key id is not its secret.
    let sha = hex(40);
    let (out, _) = redact(&format!("AKIAZX8QM2LP5RT7WN4K rotated in commit {sha}"));
    assert!(out.contains(&sha), "{out}");
}

#[test]
fn sentry_dsns() {
    let key = hex(32);
    for line in [
        format!("SENTRY_DSN=https://{key}@o4504012345.ingest.us.sentry.io/4508765432"),
        format!("sentry_sdk.init(dsn=\"https://{key}@o12.ingest.de.sentry.io/42\")"),
        format!("  dsn: https://{key}:{}@sentry.example.org/14", hex(31) + "a"),
        format!("SENTRY_DSN=http://{key}@sentry.internal:9000/3"),
    ] {
        let out = hidden(&line, &key);
        assert!(!out.contains(&(hex(31) + "a")), "{out}");
    }
    lines_untouched(&[
        "see https://sentry.io/organizations/acme/issues/4508765432/",
        "POST https://o4504012345.ingest.us.sentry.io/api/4508765432/envelope/ 200",
        &format!("event {key} sent to project 42"),
    ]);
}

#[test]
fn more_vendor_token_formats() {
    for token in [
        format!("hcxik_{}", fake(58)),
        format!("hcamk_{}", fake(26)),
        format!("cmVmdGtuOjAxOjE3{}", fake(48)),
        format!("AKCp{}", fake(69)),
        format!("ops_eyJzaWduSW5BZGRyZXNzIjoi{}", fake(200)),
        "A3-TQ4MMR-ZX2KPQ-7WN4K-D9HS3-VB6GC-1JF0T".to_owned(),
        format!("rnd_{}", fake(24)),
        format!("pat-na1-{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12)),
        format!("sl.{}", fake(140)),
        format!("{}AZDO{}", fake(76), fake(4)),
        format!("00D{}!{}", fake(15), fake(96)),
        format!("access_token$production${}${}", lower(16), hex(32)),
        format!("oauth:{}", lower(30)),
        format!("oy2{}", lower(43)),
        format!("sk.eyJ1Ijoib3BzIiwiYSI6{}.{}", fake(20), fake(22)),
        format!("EAAA{}", fake(60)),
        format!("ABSKQmVkcm9ja0FQSUtleS{}", fake(100)),
        format!("bedrock-api-key-{}", fake(200)),
        format!("v1.0-{}-{}", hex(24), hex(146)),
        format!("eyJhIjoi{}", fake(120)),
        format!("LTAI{}", fake(20)),
        format!("AKID{}", fake(32)),
        format!("SCW{}", upper(17)),
        format!("lsv2_pt_{}_{}", hex(32), hex(10)),
        format!("squ_{}", hex(40)),
        format!("sgp_{}", fake(64)),
        format!("cio{}", fake(32)),
        format!("CLOJARS_{}", lower(60)),
        format!("napi_{}", lower(64)),
        format!("FLWSECK-{}-X", hex(32)),
        format!("EZAK{}", fake(54)),
        format!("shippo_live_{}", hex(40)),
        format!("tfp_{}", fake(59)),
        format!("md-{}", fake(22)),
        format!("NRII-{}", fake(32)),
        format!("NRIQ-{}", fake(32)),
        format!("{}NRAL", hex(36)),
    ] {
        hidden(&format!("token {token} loaded"), &token);
        hidden(&format!("{{\"k\":\"{token}\"}}"), &token);
    }
    lines_untouched(&[
        "hcaik_ is the prefix of ingest keys",
        "oauth:2 flow selected",
        "GET https://sl.example.com/status 200",
        "pat-na1- tokens are private app tokens",
        "SCWATCHER started",
        "class md-button md-primary",
        "LTAI prefix",
        "AKID \"AKIA\" in message",
        "NRAK is a user key prefix",
        "eyJhbGciOiJSUzI1NiJ9 is a header",
    ]);
}

#[test]
fn webhook_ids_pats_seeds_and_encoded_credentials() {
    let hook = format!("{}{}", lower(20), "8x4k2m");
    let asana = format!("2/{}/{}:{}", "1204848379106882", "1248952451779801", hex(32));
    let seed: String = "SU".chars().chain("QWERTYUIOPASDFGHJKLZXCVBNM234567".chars().cycle().take(56)).collect();
    let b2 = format!("K00{}", fake(28));
    let blob = "eyJ1c2VybmFtZSI6ICJxdWlubiIsICJwYXNzd29yZCI6ICJaeDhRbTJMcDVSdDdXbjRLZDlIcyJ9";
    for (text, secret) in [
        (format!("MATTERMOST_WEBHOOK_URL=https://chat.example.com/hooks/{hook}"), hook.as_str()),
        (format!(r#"{{"asana_pat": "{asana}", "debug": false}}"#), asana.as_str()),
        (seed.clone(), seed.as_str()),
        (format!("+ b2 account authorize {} {b2}", hex(25)), b2.as_str()),
        (format!("decoded secret payload from env: {blob}"), blob),
    ] {
        hidden(&text, secret);
    }
    lines_untouched(&[
        "POST https://git.example.com/hooks/12 200",
        "asana task 1204848379106882 updated",
        // A JWT-like base64 JSON object without a secret member.
        "payload eyJ1c2VybmFtZSI6ICJxdWlubiIsICJyb2xlIjogImFkbWluIiwgInJlZ2lvbiI6ICJldSJ9",
        "STATUS OK SUMMARY COMPLETE",
    ]);
}
