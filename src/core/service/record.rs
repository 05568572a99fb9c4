//! Structured forms of an operator message: one JSON object per line
//! (`LogFormat = json`) and one systemd journal entry in its native
//! protocol. Both carry the same facts, from [`Notice::event`] and
//! [`Notice::fields`], plus the text line itself as the message.
//!
//! Pure formatting: the shell supplies the time string and writes the
//! bytes. No serde: the only JSON written is flat objects of strings,
//! numbers, booleans and string arrays, and the escaper below is the whole
//! of what correctness needs.

use std::fmt::Write as _;

use super::fields::{Field, Value};
use super::notice::Notice;

/// Appends `text` to `out` as a JSON string (quotes included): `"` and
/// `\` escaped, control characters as `\n`, `\t`, ... or `\u00XX`, U+2028
/// and U+2029 as `\u2028`/`\u2029` (JavaScript readers treat them as line
/// ends), everything else (non-ASCII included) as UTF-8.
pub fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_json_value(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) => push_json_str(out, s),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        // A duration is finite; `Display` for f64 never uses an exponent,
        // so this is always a JSON number.
        Value::Secs(x) if x.is_finite() => {
            let _ = write!(out, "{x}");
        }
        Value::Secs(_) => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_str(out, item);
            }
            out.push(']');
        }
    }
}

/// The fields of `notice` as written, with `host` (`-l`'s name for the
/// knocker, when known) after `ip`.
fn all_fields(notice: &Notice, host: Option<&str>) -> Vec<Field> {
    let mut fields = notice.fields();
    if let Some(host) = host {
        let at = fields
            .iter()
            .position(|(k, _)| *k == "ip")
            .map_or(0, |i| i + 1);
        fields.insert(at, ("host", Value::Str(host.to_string())));
    }
    fields
}

/// One JSON log line (no newline): `time`, `event`, the notice's fields,
/// then `message`, the text line exactly as the text format writes it
/// without its `[date]` stamp. `time` is RFC 3339, given by the shell.
pub fn json_line(time: &str, notice: &Notice, host: Option<&str>, message: &str) -> String {
    let mut out = String::with_capacity(96 + message.len() * 2);
    out.push_str("{\"time\":");
    push_json_str(&mut out, time);
    out.push_str(",\"event\":");
    push_json_str(&mut out, notice.event());
    for (key, value) in all_fields(notice, host) {
        out.push(',');
        push_json_str(&mut out, key);
        out.push(':');
        push_json_value(&mut out, &value);
    }
    out.push_str(",\"message\":");
    push_json_str(&mut out, message);
    out.push('}');
    out
}

/// Appends one journal field in the native protocol: `KEY=value\n`, or,
/// when the value holds a newline, `KEY\n`, its length as 64-bit
/// little-endian, the value, `\n`.
fn push_journal_field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// The journal's name for field `key`: `KNOCKD_` and the key in capitals
/// (journal field names are `[A-Z0-9_]`, ours are snake_case ASCII).
pub fn journal_key(key: &str) -> String {
    format!("KNOCKD_{}", key.to_ascii_uppercase())
}

/// One journal entry (a datagram for `/run/systemd/journal/socket`):
/// `MESSAGE=` the text line, `PRIORITY=5` (notice, as syslog gets it),
/// `SYSLOG_IDENTIFIER=knockd`, `SYSLOG_FACILITY=3` (daemon), then
/// `KNOCKD_EVENT=` and a `KNOCKD_<KEY>=` per field; a list is one field
/// per item (the journal allows a field more than once, and a match on
/// any item finds the entry).
pub fn journal_entry(notice: &Notice, host: Option<&str>, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + message.len());
    push_journal_field(&mut out, "MESSAGE", message);
    push_journal_field(&mut out, "PRIORITY", "5");
    push_journal_field(&mut out, "SYSLOG_IDENTIFIER", "knockd");
    push_journal_field(&mut out, "SYSLOG_FACILITY", "3");
    push_journal_field(&mut out, "KNOCKD_EVENT", notice.event());
    for (key, value) in all_fields(notice, host) {
        let key = journal_key(key);
        match value {
            Value::Str(s) => push_journal_field(&mut out, &key, &s),
            Value::Int(n) => push_journal_field(&mut out, &key, &n.to_string()),
            Value::Secs(x) => push_journal_field(&mut out, &key, &x.to_string()),
            Value::Bool(b) => push_journal_field(&mut out, &key, if b { "true" } else { "false" }),
            Value::List(items) => {
                for item in items {
                    push_journal_field(&mut out, &key, &item);
                }
            }
        }
    }
    out
}
