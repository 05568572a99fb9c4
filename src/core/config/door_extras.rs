//! The values of the door directives knockd 0.8 does not have: `Nft_Set`,
//! `Allow`/`Deny`, and the tokens a command may name.

use super::NftSet;

/// The tokens a command may name, replaced when it runs.
pub const TOKENS: [&str; 7] = [
    "%IP%",
    "%DOOR%",
    "%DST%",
    "%PROTO%",
    "%TIMEOUT%",
    "%FAMILY%",
    "%USER%",
];

/// `FAMILY TABLE SET`, for knockers of one address family (`v6`).
pub fn parse_nft_set(value: &str, v6: bool) -> Result<NftSet, String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let [family, table, set] = words[..] else {
        return Err(format!(
            "\"{value}\" is not FAMILY TABLE SET (e.g. inet filter knockd_ssh)"
        ));
    };
    let family = family.to_ascii_lowercase();
    let allowed: &[&str] = if v6 {
        &["ip6", "inet", "bridge", "netdev"]
    } else {
        &["ip", "inet", "bridge", "netdev"]
    };
    if !allowed.contains(&family.as_str()) {
        return Err(format!(
            "family \"{family}\" cannot hold {} addresses (expected {})",
            if v6 { "IPv6" } else { "IPv4" },
            allowed.join(", ")
        ));
    }
    for name in [table, set] {
        let ok = !name.is_empty()
            && name.len() <= 255
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
        if !ok {
            return Err(format!("\"{name}\" is not an nftables name"));
        }
    }
    Ok(NftSet {
        family,
        table: table.to_string(),
        set: set.to_string(),
    })
}

/// The `%WORD%` tokens in `command` that are none of [`TOKENS`]: they stay
/// as they are (as in knockd), which is most likely a typo.
pub fn unknown_tokens(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = command;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('%') else { break };
        let word = &after[..end];
        if !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            let token = format!("%{word}%");
            if !TOKENS.contains(&token.as_str()) && !out.contains(&token) {
                out.push(token);
            }
            rest = &after[end + 1..];
        } else {
            // Not a token: the second `%` may open the next one.
            rest = after;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_sets_are_family_table_set_of_the_right_family() {
        let s = parse_nft_set("inet filter knockd_ssh4", false).unwrap();
        assert_eq!(s.to_string(), "inet filter knockd_ssh4");
        assert!(parse_nft_set("IP6 t s", true).is_ok());
        assert_eq!(
            parse_nft_set("ip6 filter s", false).unwrap_err(),
            "family \"ip6\" cannot hold IPv4 addresses (expected ip, inet, bridge, netdev)"
        );
        assert_eq!(
            parse_nft_set("inet filter", false).unwrap_err(),
            "\"inet filter\" is not FAMILY TABLE SET (e.g. inet filter knockd_ssh)"
        );
        assert_eq!(
            parse_nft_set("inet fil;ter s", false).unwrap_err(),
            "\"fil;ter\" is not an nftables name"
        );
    }

    #[test]
    fn unknown_tokens_are_found_once_and_known_ones_pass() {
        assert!(unknown_tokens("iptables -s %IP% -m comment --comment %DOOR%/%PROTO%").is_empty());
        assert_eq!(
            unknown_tokens("echo %IP% %SRC% %SRC% 100% %TIMOUT%"),
            vec!["%SRC%", "%TIMOUT%"]
        );
        assert!(
            unknown_tokens("date +%s%N").is_empty(),
            "not tokens: lower case"
        );
        assert!(unknown_tokens("50%% and 20%").is_empty());
    }
}
