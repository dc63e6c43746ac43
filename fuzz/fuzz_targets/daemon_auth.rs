//! Daemon authentication lines: byte 0 picks the digest; the rest, split at
//! the first NUL, is the `auth users` value and the client's answer line
//! (`user response`). `parse_auth_users`/`render_auth_users` must round
//! trip what they accept, `check_auth` against a fixed secrets file must
//! never panic and must refuse every answer that is not the right
//! response, and `auth_response`/`base64_nopad` must accept any password
//! and challenge.
#![no_main]

use std::sync::OnceLock;

use ferrsync::daemon::secrets::{check_auth, parse_auth_users, render_auth_users};
use ferrsync::handshake::daemon::{AuthDigest, auth_response, base64_nopad};
use libfuzzer_sys::fuzz_target;

fn secrets() -> &'static std::path::Path {
    static P: OnceLock<std::path::PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("ferrsync-fuzz-secrets-{}", std::process::id()));
        std::fs::write(&p, "alice:s3cret\n@staff:grouppw\n#comment\nbob:\n").unwrap();
        p
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let digests = AuthDigest::OFFERED;
    let digest = digests[usize::from(first) % digests.len()];
    let mut parts = rest.splitn(2, |&b| b == 0);
    let users_text = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let answer = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let users = parse_auth_users(&users_text);
    let rendered = render_auth_users(&users);
    // Every entry comes back unchanged (an empty name too: `:`).
    assert_eq!(parse_auth_users(&rendered), users, "{rendered:?}");
    let challenge = base64_nopad(rest);
    let _ = auth_response(digest, rest, &challenge);
    let (who, response) = answer.split_once(' ').unwrap_or((answer.as_str(), ""));
    let right = auth_response(digest, b"s3cret", &challenge);
    let got = check_auth(&users, secrets(), false, who, response, &challenge, digest);
    if got.is_ok() && who == "alice" {
        assert_eq!(response, right, "a wrong response was accepted");
    }
});
