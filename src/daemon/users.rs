//! `knockd --add-user` and `--list-users`: the users of a door whose
//! secrets are one file per user (`Sequence_Secret_Dir`).
//!
//! This module writes a new user's key file (fresh, private, never over
//! another) and says what the user needs, and reads when each user last
//! opened from the journal's used marks. It decides nothing about knocks:
//! the daemon admits a new user, or refuses a removed one, at its next
//! SIGHUP.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::config::{
    valid_user_name, Config, SecretSource, SequenceSource, UserKey, MAX_USER_NAME,
};
use crate::core::knock::Proto;
use crate::core::rotate::{Rotation, Secret, GENERATED_SECRET_BYTES};
use crate::daemon::journal::UsedMark;

/// A door of users in the config: its directory, rotation and users.
#[derive(Debug)]
pub struct UsersDoor<'a> {
    pub name: &'a str,
    pub dir: &'a Path,
    pub rotation: &'a Rotation,
    pub users: &'a [UserKey],
}

/// The door named `door`, if it is a door of users; otherwise why not.
pub fn find<'a>(config: &'a Config, door: &str) -> Result<UsersDoor<'a>, String> {
    let d = config
        .doors
        .iter()
        .find(|d| d.name == door)
        .ok_or_else(|| format!("no door [{door}] in the config"))?;
    match &d.sequence {
        SequenceSource::Rotating {
            secret: SecretSource::Dir { path, users, .. },
            rotation,
        } => Ok(UsersDoor {
            name: &d.name,
            dir: path,
            rotation,
            users: users.as_deref().unwrap_or_default(),
        }),
        _ => Err(format!(
            "door [{door}] has no users: give it Sequence_Secret_Dir = DIR (instead of Sequence_Secret_File)"
        )),
    }
}

/// Writes a new random secret for user `name` at `door` as `DIR/NAME.key`
/// (mode 0600; never through a link, never over an existing file) and
/// returns its path.
pub fn add_user(door: &UsersDoor<'_>, name: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::OpenOptionsExt;
    if !valid_user_name(name) {
        return Err(format!(
            "\"{name}\" cannot name a user: letters, digits and ._- (at most {MAX_USER_NAME} bytes, not starting with a dot)"
        ));
    }
    let path = door.dir.join(format!("{name}.key"));
    let shown = path.display();
    let mut bytes = vec![0u8; GENERATED_SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random bytes for a secret: {e}"))?;
    let secret = Secret::new(bytes).map_err(|e| e.to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!("{shown} already exists: user {name} has a key; not overwriting it")
            }
            _ => format!(
                "cannot create {shown}: {}",
                crate::core::config::io_reason(&e)
            ),
        })?;
    let written = file
        .write_all(format!("{}\n", secret.to_base32()).as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        // Made a moment ago: a half-written key is worse than none.
        let _ = std::fs::remove_file(&path);
        return Err(format!(
            "cannot write {shown}: {}",
            crate::core::config::io_reason(&e)
        ));
    }
    Ok(path)
}

/// What user `name` needs to knock at `door` on `host`, ready to paste:
/// the `knock` command line and a doors-file entry, both naming the key
/// file as the user saves it (`NAME.key`).
pub fn instructions(door: &UsersDoor<'_>, name: &str, host: &str) -> String {
    let r = door.rotation;
    let protocols: Vec<&str> = r.protocols.iter().map(|p| p.as_str()).collect();
    let protocols = protocols.join(",");
    let key = format!("{name}.key");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {name}'s command line (the key file saved as {key}):\n\
         knock --secret-file {key} --door {} --ports {}-{} --length {} --period {}{} {host}",
        door.name,
        r.first,
        r.last,
        r.length,
        r.period,
        if r.protocols == [Proto::Tcp] {
            String::new()
        } else {
            format!(" --protocols {protocols}")
        },
    );
    let _ = writeln!(
        out,
        "# or, in ~/.config/knock/doors (the key file beside it), then `knock {}`:\n\
         [{}]\nhost        = {host}\nsecret_file = {key}\ndoor        = {}\n\
         ports       = {}-{}\nlength      = {}\nperiod      = {}\nprotocols   = {protocols}",
        door.name, door.name, door.name, r.first, r.last, r.length, r.period,
    );
    out
}

/// When each user of `door` last opened, as the journal's marks say
/// (`None`: not within the marks kept, about a day): the start of the
/// period they opened in.
pub fn last_opened(door: &UsersDoor<'_>, marks: &[UsedMark]) -> Vec<(String, Option<SystemTime>)> {
    door.users
        .iter()
        .map(|u| {
            let last = marks
                .iter()
                .filter(|m| m.door == door.name && m.user.as_deref() == Some(&*u.name))
                .map(|m| m.period)
                .max()
                .map(|p| UNIX_EPOCH + Duration::from_secs(p.saturating_mul(door.rotation.period)));
            (u.name.to_string(), last)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::parse_str;
    use std::sync::Arc;

    fn config(dir: &Path) -> Config {
        let text = format!(
            "[ssh]\nsequence_secret_dir = {}\nsequence_ports = 10000-10999\n\
             sequence_length = 5\ncommand = x\n[fixed]\nsequence = 7000\ncommand = x\n",
            dir.display()
        );
        parse_str(&text, Path::new("k.conf")).expect("parses").0
    }

    #[test]
    fn add_user_writes_a_private_key_once_and_says_how_to_knock() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let door = find(&c, "ssh").unwrap();
        let path = add_user(&door, "alice").unwrap();
        assert_eq!(path, dir.path().join("alice.key"));
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(Secret::from_base32(&text).is_ok(), "{text}");
        let e = add_user(&door, "alice").unwrap_err();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // A link planted at the name is not followed.
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join("bob.key"))
            .unwrap();
        assert!(add_user(&door, "bob").is_err());
        assert!(!dir.path().join("elsewhere").exists());
        for bad in ["", ".hidden", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(add_user(&door, bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            instructions(&door, "alice", "server.example"),
            "# alice's command line (the key file saved as alice.key):\n\
             knock --secret-file alice.key --door ssh --ports 10000-10999 --length 5 --period 30 server.example\n\
             # or, in ~/.config/knock/doors (the key file beside it), then `knock ssh`:\n\
             [ssh]\nhost        = server.example\nsecret_file = alice.key\ndoor        = ssh\n\
             ports       = 10000-10999\nlength      = 5\nperiod      = 30\nprotocols   = tcp\n"
        );
        assert!(find(&c, "fixed").unwrap_err().contains("has no users"));
        assert!(find(&c, "nope").unwrap_err().contains("no door [nope]"));
    }

    #[test]
    fn last_opened_is_each_users_latest_marked_period() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let mut door = find(&c, "ssh").unwrap();
        let secret = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        let users: Vec<UserKey> = ["alice", "bob"]
            .iter()
            .map(|n| UserKey {
                name: Arc::from(*n),
                secret: secret.clone(),
            })
            .collect();
        door.users = &users;
        let mark = |door: &str, user: Option<&str>, period| UsedMark {
            door: door.into(),
            user: user.map(str::to_string),
            period,
            keep_until: UNIX_EPOCH,
        };
        let marks = [
            mark("ssh", Some("alice"), 10),
            mark("ssh", Some("alice"), 12),
            mark("ssh", None, 20),
            mark("other", Some("bob"), 30),
        ];
        assert_eq!(
            last_opened(&door, &marks),
            vec![
                (
                    "alice".to_string(),
                    Some(UNIX_EPOCH + Duration::from_secs(360))
                ),
                ("bob".to_string(), None)
            ]
        );
    }
}
