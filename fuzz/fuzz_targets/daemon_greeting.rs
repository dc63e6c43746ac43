//! Daemon greeting and text lines: the input, split at `\n`, is fed line by
//! line to `parse_greeting` (as the client and as the daemon would read
//! it), `negotiate_protocol` for every protocol we speak, `classify_line`
//! and the auth digest negotiation. Nothing may panic; an accepted
//! greeting negotiates a protocol within what we speak or a clear error.
#![no_main]

use ferrsync::handshake::daemon::{
    AuthDigest, classify_line, negotiate_auth_digest, negotiate_protocol, parse_greeting,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n').take(64) {
        let _ = classify_line(line);
        for peer_is_client in [false, true] {
            let Ok(g) = parse_greeting(line, peer_is_client) else {
                continue;
            };
            for ours in 27u8..=32 {
                if let Ok(p) = negotiate_protocol(ours, &g) {
                    assert!(p <= ours, "negotiated {p} above ours {ours}");
                    for d in [&AuthDigest::OFFERED[..], &[AuthDigest::Md4][..]] {
                        if let Some(chosen) =
                            negotiate_auth_digest(d, g.digests.as_deref(), p, peer_is_client)
                        {
                            // Md4Old is md4 with the old rules: same name.
                            assert!(d.iter().any(|o| o.name() == chosen.name()));
                        }
                    }
                }
            }
        }
    }
});
