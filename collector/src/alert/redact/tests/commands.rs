//! Command lines, banners that print credentials, lone generated passwords and password hashes.

use super::*;

#[test]
fn command_lines() {
    for (line, secret) in [
        ("curl -u admin:cUrl-s3cret https://api.example.com", "cUrl-s3cret"),
        ("curl -sS --user 'admin:cUrl-s3cret' https://api.example.com", "cUrl-s3cret"),
        ("mysql -uroot -pmY-s3cret -h db shop", "mY-s3cret"),
        ("mysqldump --user=root --password=mY-s3cret shop", "mY-s3cret"),
        ("mysqladmin -h localhost -u root -p'mY s3cret' ping", "mY s3cret"),
        ("redis-cli -h cache -a r3dis-s3cret ping", "r3dis-s3cret"),
        ("sshpass -p 'ssh-s3cret' ssh deploy@host", "ssh-s3cret"),
        ("sshpass -pssh-s3cret scp f host:", "ssh-s3cret"),
        ("PGPASSWORD=pg-s3cret psql -h db -U app", "pg-s3cret"),
        ("docker login -u bot -p reg-s3cret registry.example.com", "reg-s3cret"),
        ("mongosh --host db -u admin -p m0ngo-s3cret", "m0ngo-s3cret"),
        ("wget --user=bob --password=w-s3cret https://x", "w-s3cret"),
        ("java -Djavax.net.ssl.keyStorePassword=ks-s3cret -jar app.jar", "ks-s3cret"),
        ("app --db-password ks-s3cret --port 80", "ks-s3cret"),
        (r#""Cmd": ["server", "--auth-token", "tok-s3cret"]"#, "tok-s3cret"),
        ("openssl pkcs12 -export -passout pass:p12-s3cret -out a.p12", "p12-s3cret"),
        ("htpasswd -bc /etc/nginx/.htpasswd admin htp-s3cret", "htp-s3cret"),
        ("rabbitmqctl add_user app rmq-s3cret", "rmq-s3cret"),
        ("mc alias set local http://minio:9000 minioadmin mc-s3cret", "mc-s3cret"),
        ("helm install db bitnami/postgresql --set auth.password=h-s3cret", "h-s3cret"),
        ("ALTER ROLE app WITH LOGIN PASSWORD 'sql-s3cret';", "sql-s3cret"),
        ("CREATE USER 'app'@'%' IDENTIFIED BY 'sql-s3cret';", "sql-s3cret"),
        ("requirepass rds-s3cret", "rds-s3cret"),
        (r#"1700000000.1 [0 10.0.0.2:5123] "AUTH" "default" "rds-s3cret""#, "rds-s3cret"),
        ("ACL SETUSER app on >acl-s3cret ~* +@all", "acl-s3cret"),
        ("machine api.example.com login bob password n3trc-s3cret", "n3trc-s3cret"),
        ("::add-mask::m4sk-s3cret", "m4sk-s3cret"),
        ("SET PASSWORD FOR 'app'@'%' = 'sql-s3cret';", "sql-s3cret"),
        ("CREATE USER 'a'@'%' IDENTIFIED WITH mysql_native_password BY 'sql-s3cret';", "sql-s3cret"),
        ("sqlplus system/0ra-s3cret@//db:1521/XE", "0ra-s3cret"),
        ("ldapsearch -x -D cn=admin,dc=x -w ld4p-s3cret -b dc=x", "ld4p-s3cret"),
        ("smbclient //host/share -U bob%smb-s3cret", "smb-s3cret"),
        ("zip -r -P z1p-s3cret out.zip dir", "z1p-s3cret"),
        ("echo \"st4in-s3cret\" | docker login -u bob --password-stdin", "st4in-s3cret"),
        ("echo 'root:chp-s3cret' | chpasswd", "chp-s3cret"),
        ("aws configure set aws_secret_access_key awsc-s3cret", "awsc-s3cret"),
    ] {
        hidden(line, secret);
    }
    lines_untouched(&[
        "mysql: [Warning] Using a password on the command line interface can be insecure.",
        "docker run -u 1000:1000 -p 8080:80 app",
        "mysql -h db -P 3306 -u app -p",
        "psql -h db -U app -d shop",
        "redis-cli -h cache ping",
        " PASS  src/app.test.js",
        "--- PASS: TestLogin (0.01s)",
        "Step 3/8 : ENV NODE_ENV production",
        "ERR AUTH <password> called without any password configured for the default user.",
        "-NOAUTH Authentication required.",
        "echo \"$REG_PASS\" | docker login -u bob --password-stdin",
        "zip -r out.zip dir",
    ]);
}

#[test]
fn banners_that_print_credentials() {
    for (line, secret) in [
        ("[Entrypoint] GENERATED ROOT PASSWORD: Gk2r.Bfh7Xs!q", "Gk2r.Bfh7Xs!q"),
        ("Using generated security password: 8e557245-73e2-4286-969a-ff57fe326336", "8e557245"),
        ("Root Token: hvs.Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6", "hvs.Zx8Qm2Lp"),
        ("Unseal Key: Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyA=", "Zx8Qm2Lp5Rt7"),
        ("Unseal Key 1: Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyA=", "Zx8Qm2Lp5Rt7"),
        ("standalone | Login with username: admin  password: Zx8Qm2Lp5Rt7", "Zx8Qm2Lp5Rt7"),
        ("RootUser: minioadmin RootPass: m1ni0-s3cret", "m1ni0-s3cret"),
        ("code-server: Password is Zx8Qm2Lp5Rt", "Zx8Qm2Lp5Rt"),
        ("your API key is `sk0-Zx8Qm2Lp5Rt`", "sk0-Zx8Qm2Lp5Rt"),
        ("using token 3f9a0c7e51b2d864 for the api", "3f9a0c7e51b2d864"),
        (" * Debugger PIN: 123-456-789", "123-456-789"),
    ] {
        hidden(line, secret);
    }
    // A secret announced on one line and printed alone on the next.
    let r = Redactor::default();
    let mut lines = r.lines();
    let out: Vec<(String, u32)> = [
        "Please use the following password to proceed to installation:",
        "",
        "3f9a0c7e51b2d8643f9a0c7e51b2d864",
        "This may also be found at: /var/jenkins_home/secrets/initialAdminPassword",
        "next",
    ]
    .iter()
    .map(|l| lines.redact(l))
    .collect();
    assert_eq!(out[2], (MARK.to_owned(), 1));
    assert_eq!(out[3].1, 0);
    assert_eq!(out[4], ("next".to_owned(), 0));
    let mut lines = r.lines();
    lines.redact("Password for the elastic user (reset with `bin/elasticsearch-reset-password -u elastic`):");
    assert_eq!(lines.redact("  x9*Zx8Qm2Lp5Rt+7Wn4K"), (format!("  {MARK}"), 1));
    // Only a lone token: prose after an announcement stays.
    let mut lines = r.lines();
    lines.redact("enter the token:");
    assert_eq!(lines.redact("started server on :8080").1, 0);
    lines_untouched(&[
        "Failed to verify token TokenExpiredError",
        "the password is invalid",
        "token 1234 expired",
        "token bucket refilled",
        "Please enter your password:",
        "Elasticsearch security features have been automatically configured!",
    ]);
}

#[test]
fn more_command_lines() {
    for (line, secret) in [
        ("+ az login --service-principal -u 0000aaaa-11bb -p Tq4-mmRv8 --tenant t", "Tq4-mmRv8"),
        ("oc login https://api.ocp:6443 -u dev -p 'Tq4-mmRv8'", "Tq4-mmRv8"),
        ("curl -fsSLu ci:Tq4-mmRv8 https://nexus/repo", "Tq4-mmRv8"),
        ("keytool -list -keystore app.jks -storepass Tq4-mmRv8", "Tq4-mmRv8"),
        ("keytool -genkey -keypass Tq4-mmRv8 -alias x", "Tq4-mmRv8"),
        ("vault login hvs.Tq4mmRv8Tq4mmRv8Tq4mmRv8", "hvs.Tq4mmRv8Tq4mmRv8Tq4mmRv8"),
        ("vault login -no-print s.Tq4mmRv8Tq4mmRv8Tq4mmRv8", "s.Tq4mmRv8Tq4mmRv8Tq4mmRv8"),
        ("level=warn msg=\"retry\" user=ci pass=Tq4-mmRv8", "Tq4-mmRv8"),
        ("host=db;user=app;pwd=Tq4-mmRv8", "Tq4-mmRv8"),
    ] {
        hidden(line, secret);
    }
    lines_untouched(&[
        "vault login -method=userpass username=ops",
        "vault login -method=oidc",
        "Tests: PASS: 12, FAIL: 0",
        "curl --url https://example.org/",
        "az login --identity",
    ]);
}

#[test]
fn banners_and_lone_generated_passwords() {
    for (line, secret) in [
        ("New value: Tq4*mmRv8=Zx2", "Tq4*mmRv8=Zx2"),
        ("Admin password set to Tq4mmRv8", "Tq4mmRv8"),
        ("the API key was changed to Tq4mmRv8Zx", "Tq4mmRv8Zx"),
        ("[Note] A temporary password is generated for root@localhost: Tq4;mmRv8", "Tq4;mmRv8"),
        ("using password Tq4mmRv8 for the admin user", "Tq4mmRv8"),
        ("password               Tq4mmRv8Zx", "Tq4mmRv8Zx"),
    ] {
        hidden(line, secret);
    }
    // Alone on a line, the line announcing it gone.
    let r = Redactor::default();
    for (line, secret) in [
        ("Tq4*mmRv8=Zx2_Kp", "Tq4*mmRv8=Zx2_Kp"),
        ("  Tq4_mm-Rv8=Zx2Kp+", "Tq4_mm-Rv8=Zx2Kp+"),
        ("ci-1  | 0a1b2c3d4e5f60718293a4b5c6d7e8f9", "0a1b2c3d4e5f60718293a4b5c6d7e8f9"),
        ("2026-01-02T03:04:05.678Z Tq4*mmRv8=Zx2_Kp", "Tq4*mmRv8=Zx2_Kp"),
    ] {
        let (out, n) = r.lines().redact(line);
        assert!(!out.contains(secret) && n == 1, "{line:?} -> {out:?}");
    }
    lines_untouched(&[
        "New value: 30",
        "password authentication failed for user app",
        "secret rotation complete",
        "HOSTNAME=9c2e4b7d1a0f",
        "LOG_FORMAT=json-Lines2",
        "Ready",
        "PONG",
        "7d3f0e2c9b8a4f61a0b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718",
        "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
        "Started in 3.2s",
        "  Release-2026.01_RC2",
        "web-1  | Build_2026_Release1",
        "Reloading secret app-config-v12",
        "POST /v1/auth/token HTTP/1.1 200",
        "GET /password/reset HTTP/2 302",
    ]);
}

#[test]
fn passwords_of_more_command_lines() {
    for (line, secret) in [
        ("/opt/mssql-tools18/bin/sqlcmd -S localhost -U sa -P 'Tq4-mmRv8' -C -Q 'SELECT 1'", "Tq4-mmRv8"),
        ("bcp dbo.orders out orders.dat -S db -U sa -PTq4-mmRv8 -c", "Tq4-mmRv8"),
        ("tsql -H db -p 1433 -U sa -P Tq4-mmRv8", "Tq4-mmRv8"),
        ("mosquitto_pub -h broker -u sensor -P Tq4-mmRv8 -t t -m 1", "Tq4-mmRv8"),
        ("ipmitool -I lanplus -H 10.0.0.9 -U admin -P Tq4-mmRv8 chassis status", "Tq4-mmRv8"),
        ("unzip -P Tq4-mmRv8 backup.zip", "Tq4-mmRv8"),
        ("cqlsh cassandra 9042 -u cassandra -p Tq4-mmRv8", "Tq4-mmRv8"),
        ("rabbitmqadmin -H mq -u admin -p Tq4-mmRv8 list queues", "Tq4-mmRv8"),
        ("rdesktop -u admin -p Tq4-mmRv8 winhost", "Tq4-mmRv8"),
        ("ss-server -s 0.0.0.0 -p 8388 -k Tq4-mmRv8 -m aes-256-gcm", "Tq4-mmRv8"),
        ("/usr/bin/ssserver -s [::]:8388 -k 'Tq4 mmRv8' -m chacha20-ietf-poly1305", "Tq4 mmRv8"),
        ("openssl enc -aes-256-cbc -k Tq4-mmRv8 -in a -out a.enc", "Tq4-mmRv8"),
        ("xfreerdp /v:rdp.example.org /u:ops /p:Tq4-mmRv8 /cert:ignore", "Tq4-mmRv8"),
        ("xfreerdp /v:h /u:ops /gp:Tq4-mmRv8 /g:gw", "Tq4-mmRv8"),
        ("wfreerdp /v:h /u:ops /pth:3f9a0c7e51b2d8643f9a0c7e51b2d864", "3f9a0c7e51b2d8643f9a0c7e51b2d864"),
        (r"net use Z: \\files\share Tq4-mmRv8 /user:CORP\ops", "Tq4-mmRv8"),
        ("ngrok config add-authtoken 2Tq4mmRv8Zx2Kp_3Tq4mmRv8Zx2Kp9", "2Tq4mmRv8Zx2Kp_3Tq4mmRv8Zx2Kp9"),
        ("./ngrok authtoken 2Tq4mmRv8Zx2Kp_3Tq4mmRv8Zx2Kp9", "2Tq4mmRv8Zx2Kp_3Tq4mmRv8Zx2Kp9"),
        ("ngrok http 80 --authtoken 2Tq4mmRv8Zx2Kp_3Tq4mmRv8Zx2Kp9", "2Tq4mmRv8Zx2Kp_3Tq4mmRv8Zx2Kp9"),
        ("curl --oauth2-bearer Tq4mmRv8Zx2Kp https://api", "Tq4mmRv8Zx2Kp"),
        ("kubeadm join cp:6443 --control-plane --certificate-key 3f9a0c7e51b2d864", "3f9a0c7e51b2d864"),
        ("app --dbpassword Tq4-mmRv8 --port 80", "Tq4-mmRv8"),
    ] {
        hidden(line, secret);
    }
    // Both of SNMPv3's passphrases.
    hides(
        "snmpwalk -v3 -l authPriv -u mon -a SHA -A Tq4-mmRv8 -x AES -X Zx2-kpQ7w 10.0.0.1",
        &["Tq4-mmRv8", "Zx2-kpQ7w"],
        2,
    );
    lines_untouched(&[
        "sqlcmd -S localhost -U sa -Q \"SELECT 1\"",
        "mosquitto_sub -h broker -t 'sensors/#' -v",
        "ssserver -c /etc/shadowsocks-rust/config.json",
        "xfreerdp /v:rdp.example.org /u:ops /cert:ignore",
        "snmpwalk -v2c -c public 10.0.0.1 system",
        "ipmitool -I lanplus -H bmc -U admin sdr list",
        "unzip -o release.zip -d /srv",
        "openssl enc -d -aes-256-cbc -in a.enc -pass file:/run/secrets/k",
        "ngrok http 8080",
        r"net use Z: \\files\share /persistent:yes",
        "rabbitmqadmin list queues",
    ]);
}

#[test]
fn password_hashes() {
    for hash in [
        format!("$2b$12${}", fake(53)),
        format!("$2y$05${}", fake(53)),
        format!("$6${}${}", fake(16), fake(86)),
        format!("$5$rounds=5000${}${}", fake(16), fake(43)),
        format!("$1${}${}", fake(8), fake(22)),
        format!("$apr1${}${}", fake(8), fake(22)),
        format!("$y$j9T${}${}", fake(22), fake(43)),
        format!("$argon2id$v=19$m=65536,t=3,p=4${}${}", fake(22), fake(43)),
        format!("$scrypt$ln=16,r=8,p=1${}${}", fake(22), fake(43)),
        format!("$pbkdf2-sha256$29000${}${}", fake(22), fake(43)),
        format!("pbkdf2_sha256$870000${}${}=", fake(22), fake(43)),
        format!("scrypt:32768:8:1${}${}", fake(16), hex(128)),
        format!("pbkdf2:sha256:600000${}${}", fake(16), hex(64)),
        format!("SCRAM-SHA-256$4096:{}==${}=:{}=", fake(22), fake(43), fake(43)),
        format!("md5{}", hex(32)),
        format!("{{SSHA}}{}", fake(32)),
    ] {
        for line in [format!("admin:{hash}"), format!("INSERT INTO users VALUES ('ops', '{hash}')")] {
            hidden(&line, &hash);
        }
    }
    let shadow = format!("root:$6${}${}:19523:0:99999:7:::", fake(16), fake(86));
    assert!(hidden(&shadow, &fake(86)).ends_with(":19523:0:99999:7:::"));
    lines_untouched(&[
        "UPDATE users SET password_hash = $1, updated_at = now() WHERE id = $2",
        "echo $1 $2 $6",
        "save $5 on your next order",
        &format!("sha256:{}", hex(64)),
        &format!("md5: {}", hex(32)),
        "pbkdf2 iterations raised to 600000",
        "hashing passwords with argon2id (m=65536, t=3, p=4)",
        "host all all all scram-sha-256",
    ]);
}

#[test]
fn more_tools_hashes_and_traces() {
    let s = fake(25);
    for (text, secret) in [
        (format!("+ expdp scott/{s}@FREEPDB1 schemas=SCOTT dumpfile=full.dmp"), s.clone()),
        (format!("+ wg set wg0 private-key <(echo {}=) peer x", fake(43)), format!("{}=", fake(43))),
        (format!("+ printf '%s' '{}-#{}'", fake(8), fake(8)), format!("{}-#{}", fake(8), fake(8))),
        (format!("BUNDLE_ENTERPRISE__CONTRIBSYS__COM=c9d6{}:{}", lower(4), hex(8)), hex(8)),
        (format!("+ bundle config set --global gems.example.com quinn:{s}"), s.clone()),
        (format!(r##"1715679585.677345 [0 127.0.0.1:5769] "CONFIG" "SET" "masterauth" "#{s}""##), format!("#{s}")),
        (format!("2024-05-14T09:34:42Z stdout F user auth on #{} ~jobs:* +@all", hex(64)), hex(64)),
        (format!("- \"traefik.http.middlewares.auth.basicauth.users=ops:$$apr1$$qj./eDja$${}\"", fake(22)), fake(22)),
        (format!("-Dzookeeper.DigestAuthenticationProvider.superDigest=super:{}=", fake(43)), format!("{}=", fake(43))),
        (format!("      │              └ '{}*{}_h'", fake(10), fake(10)), format!("{}*{}_h", fake(10), fake(10))),
        (
            "Secret ID    = 2cf2e107-cac3-4844-9127-edb7e48f76d3".to_owned(),
            "2cf2e107-cac3-4844-9127-edb7e48f76d3".to_owned(),
        ),
    ] {
        hidden(&text, &secret);
    }
    lines_untouched(&[
        "+ expdp help=y",
        "+ wg set wg0 listen-port 51820 private-key /etc/wireguard/wg0.key",
        "+ printf '%s' 'hello world'",
        "BUNDLE_PATH=vendor/bundle",
        "BUNDLE_BUILD__NOKOGIRI=--use-system-libraries",
        r#"1715679585.677345 [0 127.0.0.1:5769] "CONFIG" "GET" "maxmemory""#,
        "user default on nopass ~* +@all",
        "      │              └ 'GET /api/v1/users'",
        "Accessor ID  = 2cf2e107-cac3-4844-9127-edb7e48f76d3",
    ]);
}

#[test]
fn key_flags_and_escaped_tabs() {
    let key = format!("{}/{}+{}==", fake(40), fake(20), fake(24));
    hidden(
        &format!("+ az storage blob upload-batch -d '$web' -s ./dist --account-name acme --account-key {key}"),
        &key,
    );
    let s = format!("c.{}&{}", fake(8), fake(4));
    hidden(&format!(r#"level=DEBUG msg="params user=ivan credential\t{s} (source: /etc/app/config.yaml)""#), &s);
    let s = hex(40);
    hidden(&format!(r#"{{"@mt":"authentication failed for dd_application_key \"{s}\": invalid credentials"}}"#), &s);
    lines_untouched(&[
        "+ az storage account keys list --account-name acme --query [0].value",
        r#"msg="credential\t(none)""#,
        r#"{"msg":"cache miss for cache_key \"user:42\""}"#,
    ]);
}
