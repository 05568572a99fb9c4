//! The doors' nftables sets, as the daemon meets them: checked before it
//! starts and before a reload takes effect (a set that is missing or of
//! the wrong kind would make every knock at the door fail), and the adds
//! the service asks for.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use crate::core::config::{Config, ConfigError, NftSet};
use crate::core::service::NftAdded;
use crate::daemon::nft::{Added, Nft, NftError, SetRef};

/// The netlink side of `Nft_Set` doors, opened the first time a config
/// has one (a config without never opens a netlink socket).
#[derive(Default)]
pub struct NftDoors {
    nft: Option<Nft>,
}

impl NftDoors {
    /// Every set the config's doors name, looked up in the kernel: each
    /// missing or unsuitable one is an error at its door's line, saying
    /// how to create it. `main` names the file of doors that have none
    /// (not included).
    pub fn check(&mut self, config: &Config, main: &Path) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        for door in &config.doors {
            let sets = [
                (&door.nft_set, false, "Nft_Set"),
                (&door.nft_set_6, true, "Nft_Set_6"),
            ];
            for (set, v6, key) in sets {
                let Some(set) = set else { continue };
                let result = set_ref(set).and_then(|set| {
                    let nft = self.socket().map_err(|e| e.to_string())?;
                    nft.check(&set, v6).map_err(|e| e.to_string())
                });
                if let Err(message) = result {
                    errors.push(ConfigError {
                        file: door.file.clone().unwrap_or_else(|| main.to_path_buf()),
                        line: Some(door.line),
                        key: Some(key.to_string()),
                        message,
                    });
                }
            }
        }
        errors
    }

    /// Adds `addr` to `set` for `timeout`, removing `evict` if the set is
    /// full: what the kernel did, or the one-line reason why not.
    pub fn add(
        &mut self,
        set: &NftSet,
        addr: IpAddr,
        timeout: Duration,
        evict: Option<IpAddr>,
    ) -> Result<NftAdded, String> {
        let set = set_ref(set)?;
        let added = self
            .socket()
            .and_then(|nft| nft.add_making_room(&set, addr, timeout, evict));
        match added {
            Ok(Added::New) => Ok(NftAdded::New),
            Ok(Added::Refreshed) => Ok(NftAdded::Refreshed),
            Ok(Added::Permanent) => Ok(NftAdded::Permanent),
            Ok(Added::MadeRoom) => Ok(NftAdded::MadeRoom),
            Err(e) => {
                // A socket in an unknown state (a reply lost to a timeout)
                // is replaced on the next add.
                if matches!(e, NftError::Timeout { .. } | NftError::Io { .. }) {
                    self.nft = None;
                }
                Err(e.to_string())
            }
        }
    }

    fn socket(&mut self) -> Result<&mut Nft, NftError> {
        if self.nft.is_none() {
            self.nft = Some(Nft::open()?);
        }
        // Just set if it was not.
        self.nft
            .as_mut()
            .ok_or(NftError::Open(nix::errno::Errno::EBADF))
    }
}

/// The config's set as the netlink client names it; the parser accepted
/// the same names, so this fails only on a limit of the client's.
fn set_ref(set: &NftSet) -> Result<SetRef, String> {
    set.to_string()
        .parse::<SetRef>()
        .map_err(|e| format!("nft set {set}: {e}"))
}
